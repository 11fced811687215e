# Runs at install time (from install(CODE)): writes mdshmd.service with ExecStart and --config
# pointing into the prefix actually installed to, which `cmake --install --prefix` may change.
# In: MDSHM_UNIT_SRC, MDSHM_UNIT_OUT, MDSHM_BINDIR, MDSHM_ETCDIR (relative or absolute).
foreach(var MDSHM_BINDIR MDSHM_ETCDIR)
  if(NOT IS_ABSOLUTE "${${var}}")
    set(${var} "${CMAKE_INSTALL_PREFIX}/${${var}}")
  endif()
endforeach()
file(READ "${MDSHM_UNIT_SRC}" unit)
string(REPLACE "/usr/bin/" "${MDSHM_BINDIR}/" unit "${unit}")
string(REPLACE "/etc/mdshm/" "${MDSHM_ETCDIR}/mdshm/" unit "${unit}")
file(WRITE "${MDSHM_UNIT_OUT}" "${unit}")
