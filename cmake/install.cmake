# cmake/install.cmake — what `cmake --install` puts where, for hosts and for
# programs that embed libhvn. Included at the end of the top-level
# CMakeLists.txt, once every folder has added its sources and programs.
#
#   bin/                         hvn-broker, hvn-pub, hvn-sub, hvn-agent, hvn-keygen (those built)
#   lib*/libhvn.so.*, libhvn.a   the library, shared and static
#   include/hvnotify/            the public headers (proto, publisher, subscriber)
#   lib*/pkgconfig/hvnotify.pc   cc app.c $(pkg-config --cflags --libs hvnotify)
#   lib*/cmake/hvnotify/         find_package(hvnotify) -> hvnotify::hvn, hvnotify::hvn_static
#   lib/systemd/system/          hvn-broker.service, hvn-agent.service
#   lib/sysctl.d/                60-hvn-broker.conf (listen queues for a large fleet)
#
# Every installed file finds the others relative to itself (pkg-config's
# ${pcfiledir}, CMake's package helpers, an $ORIGIN rpath), so the tree works
# from any prefix, including one given only at install time (--prefix).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(HVN_STATIC "Also build and install libhvn as a static library" ON)
set(HVN_SYSTEMD_UNITDIR "lib/systemd/system" CACHE STRING
    "Where the systemd units go: relative to the install prefix, or absolute")
set(HVN_SYSCTLDIR "lib/sysctl.d" CACHE STRING
    "Where the broker's sysctl settings go: relative to the install prefix, or absolute")

set(hvn_pkg_libdir ${CMAKE_INSTALL_LIBDIR})
set(hvn_pkg_includedir ${CMAKE_INSTALL_INCLUDEDIR}/hvnotify)
set(hvn_pkg_cmakedir ${CMAKE_INSTALL_LIBDIR}/cmake/hvnotify)

# --------------------------------------------------------------------------
# libhvn: the installed tree's include directory, and the static variant

target_include_directories(hvn PUBLIC $<INSTALL_INTERFACE:${hvn_pkg_includedir}>)

# A source or build path in hvn's interface would be exported to installed
# consumers; keep such paths to the build tree.
get_target_property(hvn_iface_dirs hvn INTERFACE_INCLUDE_DIRECTORIES)
set(hvn_iface_fixed "")
foreach(dir IN LISTS hvn_iface_dirs)
  if(IS_ABSOLUTE "${dir}" AND NOT dir MATCHES "^\\$<")
    set(dir "$<BUILD_INTERFACE:${dir}>")
  endif()
  list(APPEND hvn_iface_fixed "${dir}")
endforeach()
set_target_properties(hvn PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${hvn_iface_fixed}")

set(hvn_install_targets hvn)
if(HVN_STATIC)
  # The same objects as the shared library, in libhvn.a; every dependency
  # becomes part of its link interface.
  get_target_property(hvn_link_libs hvn LINK_LIBRARIES)
  add_library(hvn_static STATIC $<TARGET_OBJECTS:hvnproto_obj> $<TARGET_OBJECTS:hvnpublisher_obj>
                                $<TARGET_OBJECTS:hvnsubscriber_obj>)
  set_target_properties(hvn_static PROPERTIES OUTPUT_NAME hvn)
  target_include_directories(hvn_static INTERFACE ${hvn_iface_fixed})
  target_link_libraries(hvn_static PUBLIC ${hvn_link_libs})
  list(APPEND hvn_install_targets hvn_static)
endif()

install(TARGETS ${hvn_install_targets} EXPORT hvnotifyTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# The public headers: every proto header but those internal to proto/
# (their names are hvni_: hvn_mpread.h, hvn_wire_int.h, hvn_write_int.h, hvn_json_int.h; each says
# "Internal to proto/" in its first comment), the publisher's and the
# subscriber's. What they declare is all that libhvn.so exports.
file(GLOB hvn_proto_headers ${CMAKE_SOURCE_DIR}/proto/*.h)
set(hvn_public_headers "")
foreach(header ${hvn_proto_headers})
  file(STRINGS ${header} hvn_internal_mark REGEX "Internal to proto/" LIMIT_COUNT 1)
  if(NOT hvn_internal_mark)
    list(APPEND hvn_public_headers ${header})
  endif()
endforeach()
list(APPEND hvn_public_headers ${CMAKE_SOURCE_DIR}/publisher/hvn_publisher.h
                               ${CMAKE_SOURCE_DIR}/subscriber/hvn_subscriber.h
                               ${CMAKE_SOURCE_DIR}/subscriber/hvn_replica.h)
install(FILES ${hvn_public_headers} DESTINATION ${hvn_pkg_includedir})

# --------------------------------------------------------------------------
# Programs, each as it lands; they find libhvn beside them through $ORIGIN

# Every program built, and its manual page, written at build time from its
# --help (help2man), which the program's option table generates.
set(hvn_programs hvn-broker hvn-pub hvn-sub hvn-agent hvn-keygen hvn-index hvn-bridge)
find_program(HVN_HELP2MAN help2man)
set(hvn_man_pages "")
foreach(prog ${hvn_programs})
  if(TARGET ${prog})
    set_target_properties(${prog} PROPERTIES
                          INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
    install(TARGETS ${prog} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
    if(HVN_HELP2MAN)
      set(page ${CMAKE_BINARY_DIR}/man/${prog}.1)
      add_custom_command(OUTPUT ${page}
        COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
        COMMAND ${CMAKE_SOURCE_DIR}/cmake/man.sh ${HVN_HELP2MAN} $<TARGET_FILE:${prog}> ${page}
        DEPENDS ${prog} ${CMAKE_SOURCE_DIR}/cmake/man.sh
        COMMENT "Writing the manual page of ${prog}" VERBATIM)
      list(APPEND hvn_man_pages ${page})
    endif()
  endif()
endforeach()
if(HVN_HELP2MAN)
  add_custom_target(man ALL DEPENDS ${hvn_man_pages})
  install(FILES ${hvn_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
  message(STATUS "help2man not found: no manual pages (scripts/deps.sh installs it)")
endif()

# --------------------------------------------------------------------------
# pkg-config and CMake package files

file(RELATIVE_PATH hvn_pc_to_prefix "/p/${hvn_pkg_libdir}/pkgconfig" "/p")
string(REGEX REPLACE "/$" "" hvn_pc_to_prefix "${hvn_pc_to_prefix}")
configure_file(${CMAKE_SOURCE_DIR}/cmake/hvnotify.pc.in ${CMAKE_BINARY_DIR}/hvnotify.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/hvnotify.pc DESTINATION ${hvn_pkg_libdir}/pkgconfig)

install(EXPORT hvnotifyTargets NAMESPACE hvnotify:: DESTINATION ${hvn_pkg_cmakedir})
configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/hvnotifyConfig.cmake.in
                              ${CMAKE_BINARY_DIR}/hvnotifyConfig.cmake
                              INSTALL_DESTINATION ${hvn_pkg_cmakedir})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/hvnotifyConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/hvnotifyConfig.cmake
              ${CMAKE_BINARY_DIR}/hvnotifyConfigVersion.cmake
        DESTINATION ${hvn_pkg_cmakedir})

# --------------------------------------------------------------------------
# systemd units: the programs' path is filled in at install time, so that
# an install with --prefix gets units that point into that prefix

install(CODE "set(HVN_UNIT_SOURCE_DIR \"${CMAKE_SOURCE_DIR}/dist/systemd\")
set(HVN_UNIT_BUILD_DIR \"${CMAKE_BINARY_DIR}/dist/systemd\")
set(HVN_UNIT_DIR \"${HVN_SYSTEMD_UNITDIR}\")
set(HVN_UNIT_BINDIR \"${CMAKE_INSTALL_BINDIR}\")")
install(SCRIPT ${CMAKE_SOURCE_DIR}/cmake/install_units.cmake)
install(FILES ${CMAKE_SOURCE_DIR}/dist/sysctl/60-hvn-broker.conf DESTINATION ${HVN_SYSCTLDIR})

# --------------------------------------------------------------------------
# The test: install into a temporary prefix, build examples/embed.c against
# it with pkg-config and with find_package, run it

if(HVN_TESTS)
  add_test(NAME install_embed
           COMMAND ${CMAKE_SOURCE_DIR}/tests/install/check_install.sh
                   ${CMAKE_BINARY_DIR} ${CMAKE_SOURCE_DIR} ${HVN_SANITIZE})
  set_tests_properties(install_embed PROPERTIES TIMEOUT 300)
  add_test(NAME libhvn_exports
           COMMAND ${CMAKE_SOURCE_DIR}/tests/install/check_exports.sh $<TARGET_FILE:hvn>
                   ${hvn_public_headers})
  set_tests_properties(libhvn_exports PROPERTIES TIMEOUT 30)
endif()
