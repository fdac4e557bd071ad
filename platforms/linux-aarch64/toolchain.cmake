# Cross-compile rill for 64-bit Arm Linux (Jetson Orin/Thor CPUs, Raspberry Pi 5, phones' Linux)
# from an x86_64 Debian host:
#   apt-get install g++-aarch64-linux-gnu
#   cmake -S . -B build-arm64 -G Ninja --toolchain platforms/linux-aarch64/toolchain.cmake \
#         -DRILL_BUILD_TESTS=OFF -DRILL_BUILD_CONVERTER=OFF
# The runtime needs only FlatBuffers headers (architecture-independent) besides libc++/libstdc++;
# ThreadPool needs pthreadpool for arm64 in the sysroot (without it, sessions run on one thread).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
