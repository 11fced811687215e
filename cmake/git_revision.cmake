# mdshm_git_revision(OUT DIR): `git describe --always --dirty` of DIR at configure time, or
# "unknown" where DIR is no git checkout (a release tarball) or git is missing. Also runs as a
# script: cmake -DDIR=... -P git_revision.cmake prints the revision (tests/install uses it).
function(mdshm_git_revision out dir)
  set(rev "unknown")
  find_package(Git QUIET)
  if(GIT_FOUND)
    execute_process(COMMAND ${GIT_EXECUTABLE} -C ${dir} describe --always --dirty
                    OUTPUT_VARIABLE described RESULT_VARIABLE rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(rc EQUAL 0 AND NOT described STREQUAL "")
      set(rev "${described}")
    endif()
  endif()
  set(${out} "${rev}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED DIR)
  mdshm_git_revision(rev "${DIR}")
  message("${rev}")
endif()
