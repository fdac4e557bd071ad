# FindXNNPACK: Debian's libxnnpack-dev ships xnnpack.h and libXNNPACK.so without a CMake package.
# xnnpack.h includes <pthreadpool.h> (libpthreadpool-dev); libXNNPACK needs libcpuinfo and libpthreadpool.
# Defines XNNPACK::XNNPACK.
find_path(XNNPACK_INCLUDE_DIR xnnpack.h)
find_path(PTHREADPOOL_INCLUDE_DIR pthreadpool.h)
find_library(XNNPACK_LIBRARY NAMES XNNPACK)
find_library(PTHREADPOOL_LIBRARY NAMES pthreadpool)
find_library(CPUINFO_LIBRARY NAMES cpuinfo)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(XNNPACK
  REQUIRED_VARS XNNPACK_LIBRARY XNNPACK_INCLUDE_DIR PTHREADPOOL_INCLUDE_DIR PTHREADPOOL_LIBRARY CPUINFO_LIBRARY
  REASON_FAILURE_MESSAGE "install libxnnpack-dev libpthreadpool-dev libcpuinfo-dev, or configure with -DRILL_XNNPACK=OFF")
if(XNNPACK_FOUND AND NOT TARGET XNNPACK::XNNPACK)
  add_library(XNNPACK::XNNPACK UNKNOWN IMPORTED)
  set_target_properties(XNNPACK::XNNPACK PROPERTIES
    IMPORTED_LOCATION "${XNNPACK_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${XNNPACK_INCLUDE_DIR};${PTHREADPOOL_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${PTHREADPOOL_LIBRARY};${CPUINFO_LIBRARY}")
endif()
mark_as_advanced(XNNPACK_INCLUDE_DIR PTHREADPOOL_INCLUDE_DIR XNNPACK_LIBRARY PTHREADPOOL_LIBRARY CPUINFO_LIBRARY)
