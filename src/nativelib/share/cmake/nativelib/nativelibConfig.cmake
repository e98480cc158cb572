# find_package(nativelib COMPONENTS gomp cudart-cu12): the runtime wheels of pynativelib
# as imported targets (nativelib::gomp, nativelib::cudart, ...). Owned by pynativelib;
# each runtime wheel installs its component, nativelib-<name>.cmake, into
# <site-packages>/nativelib.prefix/share/cmake/nativelib/.
#
# The prefix is looked for, in order, in: the cache variable nativelib_PREFIX, the
# environment variable NATIVELIB_PREFIX, the site directory this file is installed in,
# and <P>/nativelib.prefix and <P>/../nativelib.prefix for each P in CMAKE_PREFIX_PATH
# (scikit-build-core puts site-packages and the cmake.prefix entry points there).
#
# At run time an extension finds the prefix through its RUNPATH:
#   nativelib_runtime_rpath(<target> [DESTINATION <its directory below site-packages>])
# appends $ORIGIN/<..>/nativelib.prefix/lib to the target's INSTALL_RPATH.
# `nativelib config --requires <component>` prints the Requires-Dist line to declare.

set(nativelib_FOUND TRUE)
set(_nativelib_candidates "")
if(nativelib_PREFIX)
  list(APPEND _nativelib_candidates "${nativelib_PREFIX}")
endif()
if(DEFINED ENV{NATIVELIB_PREFIX})
  list(APPEND _nativelib_candidates "$ENV{NATIVELIB_PREFIX}")
endif()
get_filename_component(_nativelib_site "${CMAKE_CURRENT_LIST_DIR}/../../../.." ABSOLUTE)
list(APPEND _nativelib_candidates "${_nativelib_site}/nativelib.prefix")
foreach(_nativelib_p IN LISTS CMAKE_PREFIX_PATH)
  list(APPEND _nativelib_candidates
    "${_nativelib_p}/nativelib.prefix" "${_nativelib_p}/../nativelib.prefix")
endforeach()

set(_nativelib_missing "")
foreach(_nativelib_c IN LISTS nativelib_FIND_COMPONENTS)
  set(nativelib_${_nativelib_c}_FOUND FALSE)
  foreach(_nativelib_pre IN LISTS _nativelib_candidates)
    set(_nativelib_f "${_nativelib_pre}/share/cmake/nativelib/nativelib-${_nativelib_c}.cmake")
    if(EXISTS "${_nativelib_f}")
      include("${_nativelib_f}")
      set(nativelib_${_nativelib_c}_FOUND TRUE)
      break()
    endif()
  endforeach()
  if(NOT nativelib_${_nativelib_c}_FOUND AND nativelib_FIND_REQUIRED_${_nativelib_c})
    list(APPEND _nativelib_missing "nativelib-${_nativelib_c}")
  endif()
endforeach()

if(_nativelib_missing)
  set(nativelib_FOUND FALSE)
  list(REMOVE_DUPLICATES _nativelib_candidates)
  string(REPLACE ";" " " _nativelib_what "${_nativelib_missing}")
  string(REPLACE ";" ", " _nativelib_where "${_nativelib_candidates}")
  set(nativelib_NOT_FOUND_MESSAGE
    "not installed: ${_nativelib_what} (looked in ${_nativelib_where}). Install it where the build runs (pip install ${_nativelib_what}, or list it in build-system.requires), or point -Dnativelib_PREFIX at the nativelib.prefix it is in (nativelib config --prefix)")
endif()

function(nativelib_runtime_rpath target)
  # The $ORIGIN-relative RUNPATH from where <target> installs (DESTINATION, a directory
  # below site-packages; "." by default) to <site-packages>/nativelib.prefix/lib.
  cmake_parse_arguments(PARSE_ARGV 1 _nl "" "DESTINATION" "")
  if(NOT DEFINED _nl_DESTINATION)
    set(_nl_DESTINATION ".")
  endif()
  set(_nl_rpath "$ORIGIN")
  string(REPLACE "/" ";" _nl_parts "${_nl_DESTINATION}")
  foreach(_nl_part IN LISTS _nl_parts)
    if(_nl_part STREQUAL "..")
      message(FATAL_ERROR "nativelib_runtime_rpath: DESTINATION ${_nl_DESTINATION} must stay below site-packages")
    elseif(NOT _nl_part STREQUAL "." AND NOT _nl_part STREQUAL "")
      string(APPEND _nl_rpath "/..")
    endif()
  endforeach()
  string(APPEND _nl_rpath "/nativelib.prefix/lib")
  set_property(TARGET ${target} APPEND PROPERTY INSTALL_RPATH "${_nl_rpath}")
endfunction()

unset(_nativelib_c)
unset(_nativelib_f)
unset(_nativelib_p)
unset(_nativelib_pre)
unset(_nativelib_site)
