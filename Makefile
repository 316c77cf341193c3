# Thin wrapper over CMake + CTest. See README.md.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
DEBUG_BUILD ?= build-debug
FUZZ_BUILD ?= build-fuzz
ARM64_BUILD ?= build-arm64
FUZZ_SECONDS ?= 30
# The CPU the build targets (CMakeLists.txt, LORAC_MARCH): portable (x86-64-v2; lorac's SIMD kernels
# are chosen at run time), or NATIVE=1 for -march=native (this machine only), or MARCH=x86-64-v3 etc.
NATIVE ?= 0
ifeq ($(NATIVE),1)
MARCH ?= native
endif
MARCH ?= portable
# make test-isa ISA=avx2: the test suite again, without rebuilding, with lorac's kernels capped at ISA
ISA ?= avx2

.PHONY: all test test-isa test-arm64 debug debug-test deps fuzz bench clean demo

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLORAC_MARCH=$(MARCH)
	cmake --build $(BUILD) -j $(JOBS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# LORAC_ISA caps the kernel level (README, "CPU support"); `lorac version` shows what runs and
# refuses a misspelt level.
test-isa:
	LORAC_ISA=$(ISA) $(BUILD)/lorac version
	cd $(BUILD) && LORAC_ISA=$(ISA) ctest --output-on-failure -j $(JOBS)

# arm64: cross build (Debian's gcc-aarch64-linux-gnu, arm64 OpenBLAS), every test under qemu-user;
# not part of .ci/run: emulation is ~15-20x slower (test_grad 138 s, cli_gpt2_pipeline 20 min, the
# SmolLM2 tests longer).
# CTEST_ARGS picks tests, e.g. CTEST_ARGS='-E llama'. Packages: ./tools/install_deps.sh --arm64
CTEST_ARGS ?=
test-arm64:
	cmake -S . -B $(ARM64_BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
	cmake --build $(ARM64_BUILD) -j $(JOBS)
	cd $(ARM64_BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

# ASan + UBSan build; its tests run in .ci/run after `make test`.
debug:
	cmake -S . -B $(DEBUG_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLORAC_SANITIZE=ON -DLORAC_MARCH=$(MARCH)
	cmake --build $(DEBUG_BUILD) -j $(JOBS)

debug-test: debug
	cd $(DEBUG_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L sanitize

# libFuzzer targets (clang); each runs for FUZZ_SECONDS.
fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLORAC_FUZZ=ON -DLORAC_MARCH=$(MARCH)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	./tools/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

deps:
	./tools/install_deps.sh

bench: all
	./bench/run.sh

# The README's main command: SmolLM2-135M-Instruct before and after a few minutes of LoRA (tools/demo.sh).
# Builds only the lorac binary (not the tests).
demo:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLORAC_MARCH=$(MARCH)
	cmake --build $(BUILD) -j $(JOBS) --target lorac_cli
	./tools/demo.sh $(BUILD)/lorac

clean:
	rm -rf $(BUILD) $(DEBUG_BUILD) $(FUZZ_BUILD) $(ARM64_BUILD)
