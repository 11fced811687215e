# Install rules: mdshmd and mdshm, the systemd unit and sysusers file, the default configuration,
# the client headers, a CMake package (find_package(mdshm) -> mdshm::client, header-only INTERFACE
# target) and a pkg-config file (mdshm.pc). A .deb and a .tar.gz via CPack.
#
# Included once from the top-level CMakeLists.txt. The rules run deferred, at the end of the
# top-level directory, so every target exists (mdshmd is optional) wherever the include() sits.
include_guard(GLOBAL)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(MDSHM_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING "systemd unit directory, relative to the prefix")
set(MDSHM_SYSUSERS_DIR "lib/sysusers.d" CACHE STRING "sysusers.d directory, relative to the prefix")
set(MDSHM_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/mdshm")   # header-only: arch-independent
set(MDSHM_PKGCONFIG_DIR "${CMAKE_INSTALL_DATADIR}/pkgconfig")

function(mdshm_install_rules)
  set(src ${PROJECT_SOURCE_DIR})
  # Configuration goes to /etc for a /usr install (the .deb), else under the prefix.
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(etc_dir ${CMAKE_INSTALL_FULL_SYSCONFDIR})
  else()
    set(etc_dir ${CMAKE_INSTALL_SYSCONFDIR})
  endif()
  set(gen ${PROJECT_BINARY_DIR}/install-gen)

  # --- the client: headers, CMake package, pkg-config -----------------------------------------
  install(DIRECTORY ${src}/client/include/ ${src}/shm_layout/include/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          COMPONENT client FILES_MATCHING PATTERN "*.hpp")
  set_target_properties(mdshm_client PROPERTIES EXPORT_NAME client)
  set_target_properties(mdshm_layout PROPERTIES EXPORT_NAME layout)
  install(TARGETS mdshm_client mdshm_layout EXPORT mdshmTargets COMPONENT client)
  install(EXPORT mdshmTargets NAMESPACE mdshm:: DESTINATION ${MDSHM_CMAKE_DIR} COMPONENT client)
  configure_package_config_file(${src}/cmake/mdshmConfig.cmake.in ${gen}/mdshmConfig.cmake
                                INSTALL_DESTINATION ${MDSHM_CMAKE_DIR})
  # The shared-memory layout has its own major version in the segments; the package version
  # tracks the client API: same major.minor is compatible.
  write_basic_package_version_file(${gen}/mdshmConfigVersion.cmake VERSION ${PROJECT_VERSION}
                                   COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
  install(FILES ${gen}/mdshmConfig.cmake ${gen}/mdshmConfigVersion.cmake DESTINATION ${MDSHM_CMAKE_DIR}
          COMPONENT client)
  # mdshm.pc finds its prefix from its own location (${pcfiledir}): relocatable, DESTDIR-friendly.
  file(RELATIVE_PATH MDSHM_PC_PREFIX_REL /prefix/${MDSHM_PKGCONFIG_DIR} /prefix)
  string(REGEX REPLACE "/$" "" MDSHM_PC_PREFIX_REL "${MDSHM_PC_PREFIX_REL}")
  configure_file(${src}/cmake/mdshm.pc.in ${gen}/mdshm.pc @ONLY)
  install(FILES ${gen}/mdshm.pc DESTINATION ${MDSHM_PKGCONFIG_DIR} COMPONENT client)

  # --- programs ----------------------------------------------------------------------------
  foreach(prog mdshmd mdshm)
    if(TARGET ${prog})
      install(TARGETS ${prog} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT service)
    endif()
  endforeach()

  # --- the service: unit (paths rewritten to this prefix), sysusers, default configuration ----
  set(render "set(MDSHM_UNIT_SRC [[${src}/systemd/mdshmd.service]])\nset(MDSHM_UNIT_OUT [[${gen}/mdshmd.service]])\n")
  string(APPEND render "set(MDSHM_BINDIR [[${CMAKE_INSTALL_BINDIR}]])\nset(MDSHM_ETCDIR [[${etc_dir}]])\n")
  install(CODE "${render}include([[${src}/cmake/render_unit.cmake]])" COMPONENT service)
  install(FILES ${gen}/mdshmd.service DESTINATION ${MDSHM_SYSTEMD_UNIT_DIR} COMPONENT service)
  install(FILES ${src}/systemd/mdshm.sysusers RENAME mdshm.conf DESTINATION ${MDSHM_SYSUSERS_DIR} COMPONENT service)
  install(FILES ${src}/config/mdshm.toml ${src}/config/synthetic.toml
          DESTINATION ${etc_dir}/mdshm COMPONENT service)
  install(FILES ${src}/client/examples/latest.cpp ${src}/client/examples/subscribe.cpp
          DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples COMPONENT client)
  install(FILES ${src}/docs/OPERATIONS.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT service OPTIONAL)

  # --- packages: cpack -G DEB (or TGZ) from the build directory ------------------------------
  set(CPACK_PACKAGE_NAME mdshm)
  set(CPACK_PACKAGE_VENDOR mdshm)
  set(CPACK_PACKAGE_CONTACT "mdshm maintainers <mdshm@localhost>")
  set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "market-data daemon with shared-memory IPC, inspector and client headers")
  set(CPACK_GENERATOR "DEB;TGZ")
  # The package installs to CMAKE_INSTALL_PREFIX: configure with -DCMAKE_INSTALL_PREFIX=/usr for a .deb.
  set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
  set(CPACK_DEBIAN_PACKAGE_SECTION net)
  # The configuration files are the operator's: dpkg keeps local edits across upgrades (conffiles).
  if(IS_ABSOLUTE "${etc_dir}")
    set(etc_abs "${etc_dir}")
  else()
    set(etc_abs "${CMAKE_INSTALL_PREFIX}/${etc_dir}")
  endif()
  file(WRITE ${gen}/conffiles "${etc_abs}/mdshm/mdshm.toml\n${etc_abs}/mdshm/synthetic.toml\n")
  # CPack's DEB default prefix is /usr whatever CMAKE_INSTALL_PREFIX says; keep them one, so the
  # unit's paths and the conffiles above are where the package puts the files.
  file(WRITE ${gen}/cpack_project.cmake
       "if(CPACK_GENERATOR STREQUAL \"DEB\")\n  set(CPACK_PACKAGING_INSTALL_PREFIX [[${CMAKE_INSTALL_PREFIX}]])\nendif()\n")
  set(CPACK_PROJECT_CONFIG_FILE ${gen}/cpack_project.cmake)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${src}/systemd/debian/postinst ${gen}/conffiles)
  set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
  include(CPack)
endfunction()

cmake_language(DEFER DIRECTORY ${CMAKE_SOURCE_DIR} CALL mdshm_install_rules)
