# cmake/check_layers.cmake — fails the build when a source file opens a
# door its room does not have (docs/architecture.md, "Rooms and doors").
#   cmake -DHVN_SOURCE_DIR=<top> -P cmake/check_layers.cmake
#
# Each folder below is a room; a room may include headers from itself and
# from the rooms listed after it. A quoted include is looked up the way the
# compiler would (beside the file first, then in every room), so a relative
# path ("../broker/x.h") is caught as well as a plain name.
set(rooms
  "proto:proto"
  "common:common"
  "publisher:publisher,proto,common"
  "publisher/agent:publisher/agent,publisher,proto,common"
  "broker:broker,proto,common"
  "subscriber:subscriber,proto,common"
  "subscriber/index:subscriber/index,subscriber,proto,common"
  "subscriber/bridge:subscriber/bridge,subscriber,proto,common")

set(room_dirs "")
foreach(entry ${rooms})
  string(REGEX REPLACE ":.*" "" dir "${entry}")
  list(APPEND room_dirs "${dir}")
endforeach()

# Returns in ${out} the room that owns absolute path ${path} ("" if none):
# the longest room folder that holds it directly.
function(room_of path out)
  get_filename_component(parent "${path}" DIRECTORY)
  file(RELATIVE_PATH rel "${HVN_SOURCE_DIR}" "${parent}")
  set(found "")
  foreach(dir ${room_dirs})
    if(rel STREQUAL dir)
      set(found "${dir}")
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

set(errors "")
foreach(entry ${rooms})
  string(REGEX REPLACE ":.*" "" room "${entry}")
  string(REGEX REPLACE "^[^:]*:" "" allowed "${entry}")
  string(REPLACE "," ";" allowed "${allowed}")
  file(GLOB sources "${HVN_SOURCE_DIR}/${room}/*.c" "${HVN_SOURCE_DIR}/${room}/*.h")
  foreach(source ${sources})
    file(STRINGS "${source}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
    foreach(line ${includes})
      string(REGEX REPLACE "^[^\"]*\"([^\"]*)\".*" "\\1" header "${line}")
      get_filename_component(here "${source}" DIRECTORY)
      set(target "")
      if(EXISTS "${here}/${header}")
        get_filename_component(target "${here}/${header}" ABSOLUTE)
      else()
        foreach(dir ${room_dirs})
          if(NOT target AND EXISTS "${HVN_SOURCE_DIR}/${dir}/${header}")
            set(target "${HVN_SOURCE_DIR}/${dir}/${header}")
          endif()
        endforeach()
      endif()
      if(target)
        room_of("${target}" owner)
        if(NOT owner)
          set(owner "outside the rooms")
        endif()
        list(FIND allowed "${owner}" at)
        if(at EQUAL -1)
          file(RELATIVE_PATH where "${HVN_SOURCE_DIR}" "${source}")
          string(APPEND errors
                 "  ${where}: #include \"${header}\" opens ${owner}/, a door ${room}/ does not have\n")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

if(errors)
  message(FATAL_ERROR "layers: forbidden includes (docs/architecture.md):\n${errors}")
endif()
