# Thin wrapper over CMake + CTest. See README.md.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD ?= build
DEBUG_BUILD ?= build-debug
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30

.PHONY: all test debug debug-test deps fuzz bench clean demo

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS)

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

# ASan + UBSan build; its tests run in .ci/run after `make test`.
debug:
	cmake -S . -B $(DEBUG_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLORAC_SANITIZE=ON
	cmake --build $(DEBUG_BUILD) -j $(JOBS)

debug-test: debug
	cd $(DEBUG_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -L sanitize

# libFuzzer targets (clang); each runs for FUZZ_SECONDS.
fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLORAC_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	./tools/run_fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

deps:
	./tools/install_deps.sh

bench: all
	./bench/run.sh

# The README's main command: SmolLM2-135M-Instruct before and after a few minutes of LoRA (tools/demo.sh).
# Builds only the lorac binary (not the tests).
demo:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j $(JOBS) --target lorac_cli
	./tools/demo.sh $(BUILD)/lorac

clean:
	rm -rf $(BUILD) $(DEBUG_BUILD) $(FUZZ_BUILD)
