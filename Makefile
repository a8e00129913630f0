# Tally: a thin wrapper over CMake.  `make help` lists the targets.
#
# Every target configures the build directory it uses (a no-op when nothing
# changed) and builds with $(JOBS) jobs, so each one works from a fresh clone:
#
#   build/           RelWithDebInfo            make, make demo, make test, make check
#   build-asan/      Debug, ASan + UBSan       make check
#   build-pool12/    RelWithDebInfo, 4 KiB pools   make check
#   build-valgrind/  Debug, no sanitizer       make memcheck
#   build-bench/     Release, benchmarks       make bench
#   build-install/   RelWithDebInfo, lib only  make install
#
# Extra CMake options for every configure: make CMAKE_FLAGS='-DTALLY_WERROR=OFF'.

CMAKE       ?= cmake
CTEST       ?= ctest
PYTHON      ?= python3
JOBS        ?= 2
PREFIX      ?= /usr/local
CMAKE_FLAGS ?=
# Default per-test time limit, for tests that set no TIMEOUT property.
TEST_TIMEOUT ?= 600
BENCH_ARGS  ?=
BENCH_GC_ARGS ?=
BENCH_TYPES_ARGS ?=
BENCH_TRACE_ARGS ?=
BENCH_PRELOAD_ARGS ?=

# Sanitizer runtime settings for the build-asan/ run (kept if already set).
ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1
UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

# The build directories share nothing, but the targets reuse them: run in order.
.NOTPARALLEL:
MAKEFLAGS += --no-print-directory
.DEFAULT_GOAL := all

configure = $(CMAKE) -S . -B $(1) $(2) $(CMAKE_FLAGS)
build     = $(CMAKE) --build $(1) -j$(JOBS)
runtests  = cd $(1) && $(CTEST) --output-on-failure --no-tests=error -j$(JOBS) --timeout $(TEST_TIMEOUT)
banner    = @printf '\n==== %s ====\n' $(1)

DEFAULT_OPTS = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=OFF -DTALLY_POOL_SHIFT=14
ASAN_OPTS    = -DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=ON -DTALLY_POOL_SHIFT=14
POOL12_OPTS  = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTALLY_SANITIZE=OFF -DTALLY_POOL_SHIFT=12

.PHONY: all build demo test check deps check-deps check-default check-asan \
        check-pool12 check-install check-symbols memcheck bench bench-gc bench-types bench-preload bench-trace install clean help

all: build

help:
	@echo 'make            build build/ (RelWithDebInfo)'
	@echo 'make demo       build and run build/examples/tally-tour'
	@echo 'make test       build build/ and run the test suite once'
	@echo 'make check      the full check: deps, tests in build/, ASan+UBSan in build-asan/,'
	@echo '                4 KiB pools in build-pool12/, install check, exported-symbol check'
	@echo 'make memcheck   every test under valgrind memcheck (build-valgrind/)'
	@echo 'make bench      Release benchmarks (build-bench/) via bench/run_alloc.py [BENCH_ARGS=--quick]'
	@echo 'make bench-gc   objects + collector vs CPython via bench/run_gc.py [BENCH_GC_ARGS=--quick]'
	@echo 'make bench-types built-in types vs CPython via bench/run_types.py [BENCH_TYPES_ARGS=--reps 3]'
	@echo 'make bench-preload  tally run vs heaptrack and massif via bench/preload/run.py [BENCH_PRELOAD_ARGS=--reps 3]'
	@echo 'make bench-trace  cost of allocation tracing (untraced, 1 frame, 16 frames, sampled) [BENCH_TRACE_ARGS="40 7"]'
	@echo 'make install PREFIX=/usr/local   install headers, libraries, CMake + pkg-config files'
	@echo 'make clean      remove every build*/ directory'

# ---- build/ ---------------------------------------------------------------------
build:
	$(call configure,build,$(DEFAULT_OPTS))
	$(call build,build)

demo:
	$(call configure,build,$(DEFAULT_OPTS))
	cmake --build build -j$(JOBS) --target tally-tour
	./build/examples/tally-tour

test: build
	$(call runtests,build)

# ---- make check -----------------------------------------------------------------
deps check-deps:
	$(call banner,"dependencies")
	./scripts/deps.sh

check-default:
	$(call banner,"tests: build/ (RelWithDebInfo)")
	$(call configure,build,$(DEFAULT_OPTS))
	$(call build,build)
	$(call runtests,build)

check-asan:
	$(call banner,"tests: build-asan/ (Debug, AddressSanitizer + UBSan)")
	$(call configure,build-asan,$(ASAN_OPTS))
	$(call build,build-asan)
	export ASAN_OPTIONS='$(ASAN_OPTIONS)' UBSAN_OPTIONS='$(UBSAN_OPTIONS)'; \
	  $(call runtests,build-asan)

check-pool12:
	$(call banner,"tests: build-pool12/ (TALLY_POOL_SHIFT=12)")
	$(call configure,build-pool12,$(POOL12_OPTS))
	$(call build,build-pool12)
	$(call runtests,build-pool12)

check-install: build
	$(call banner,"install check")
	./scripts/check-install.sh build

check-symbols: build
	$(call banner,"exported symbols")
	./scripts/check-symbols.sh build

check: check-deps check-default check-asan check-pool12 check-install check-symbols
	@printf '\n==== make check: all passed ====\n'

# ---- valgrind -------------------------------------------------------------------
memcheck:
	$(call banner,"memcheck: build-valgrind/ (Debug, valgrind)")
	$(call configure,build-valgrind,-DCMAKE_BUILD_TYPE=Debug -DTALLY_SANITIZE=OFF -DTALLY_POOL_SHIFT=14)
	$(call build,build-valgrind)
	JOBS=$(JOBS) ./scripts/memcheck.sh build-valgrind

# ---- benchmarks -----------------------------------------------------------------
# Same configuration as bench/run.sh.  Options for run_alloc.py: make bench BENCH_ARGS=--quick
bench:
	./scripts/deps.sh --bench
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_SANITIZE=OFF)
	$(call build,build-bench)
	$(PYTHON) bench/run_alloc.py build-bench/bench $(BENCH_ARGS)

# Objects and collector against CPython (embedded through its C API).
bench-gc:
	./scripts/deps.sh --bench
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_SANITIZE=OFF)
	$(CMAKE) --build build-bench -j$(JOBS) --target gc_bench
	$(PYTHON) bench/run_gc.py build-bench/bench $(BENCH_GC_ARGS)

# Built-in types against CPython's C API.
bench-types:
	./scripts/deps.sh --bench
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_SANITIZE=OFF)
	$(CMAKE) --build build-bench -j$(JOBS) --target types_bench
	$(PYTHON) bench/run_types.py build-bench/bench $(BENCH_TYPES_ARGS)

# The profiler (tally run) against heaptrack and massif on an allocation-heavy program.
bench-preload:
	./scripts/deps.sh --bench
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_SANITIZE=OFF)
	$(CMAKE) --build build-bench -j$(JOBS) --target tally_cli tally_preload
	$(PYTHON) bench/preload/run.py build-bench $(BENCH_PRELOAD_ARGS)

# The cost of allocation tracing on a mixed workload (bench/trace_bench.c): rounds, reps.
bench-trace:
	./scripts/deps.sh --bench
	$(call configure,build-bench,-DCMAKE_BUILD_TYPE=Release -DTALLY_BUILD_BENCH=ON -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_SANITIZE=OFF)
	$(CMAKE) --build build-bench -j$(JOBS) --target trace_bench
	./build-bench/bench/trace_bench $(BENCH_TRACE_ARGS)

# ---- install --------------------------------------------------------------------
# Honours DESTDIR (staged installs): make install PREFIX=/usr DESTDIR=/tmp/stage
install:
	$(call configure,build-install,-DCMAKE_INSTALL_PREFIX=$(abspath $(PREFIX)) -DTALLY_BUILD_TESTS=OFF -DTALLY_BUILD_EXAMPLES=OFF -DTALLY_BUILD_BENCH=OFF -DTALLY_SANITIZE=OFF)
	$(call build,build-install)
	$(CMAKE) --install build-install

clean:
	rm -rf build build-asan build-pool12 build-valgrind build-bench build-install
