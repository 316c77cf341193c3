# Cross build for arm64 (aarch64) with Debian's cross compiler and arm64 OpenBLAS, tests run under
# qemu-user: `make test-arm64` (packages: `tools/install_deps.sh --arm64`). Only lorac's generic
# kernel level exists there.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
# Debian multiarch: arm64 libraries and headers under .../aarch64-linux-gnu (CMakeLists.txt's hints)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# CTest runs the test programs through it; the CLI tests get a wrapper script (CMakeLists.txt). The
# arm64 loader and libraries come from the multiarch packages (libc6:arm64, libgomp1:arm64): with
# `-L /usr/aarch64-linux-gnu` (the cross toolchain's copies) OpenMP programs hung on 2 threads.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
