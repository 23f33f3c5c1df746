# cmake/install_units.cmake — run by `cmake --install`: writes the systemd
# units from dist/systemd/*.service.in with the programs' installed path and
# installs them. HVN_UNIT_* are set by cmake/install.cmake just before.
if(IS_ABSOLUTE "${HVN_UNIT_DIR}")
  set(unit_dest "${HVN_UNIT_DIR}")
else()
  set(unit_dest "${CMAKE_INSTALL_PREFIX}/${HVN_UNIT_DIR}")
endif()
if(IS_ABSOLUTE "${HVN_UNIT_BINDIR}")
  set(bindir "${HVN_UNIT_BINDIR}")
else()
  set(bindir "${CMAKE_INSTALL_PREFIX}/${HVN_UNIT_BINDIR}")
endif()
foreach(unit hvn-broker hvn-agent)
  configure_file("${HVN_UNIT_SOURCE_DIR}/${unit}.service.in"
                 "${HVN_UNIT_BUILD_DIR}/${unit}.service" @ONLY)
  file(INSTALL DESTINATION "${unit_dest}" TYPE FILE
       FILES "${HVN_UNIT_BUILD_DIR}/${unit}.service")
endforeach()
