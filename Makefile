# Thin wrapper around CMake; see README.md.
#   make run    install dependencies, build, start a demo server in ./run
#   make test   install dependencies, build, run every test suite
#   make fuzz   run every libFuzzer target for FUZZ_SECONDS each
#   make install

JOBS ?= 2
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
PREFIX ?= /usr/local
PYTHON ?= /usr/bin/python3
# Protocol tests run in parallel (pytest-xdist); they mostly wait on sockets,
# so more workers than cores pays.  PYTEST_WORKERS=0 runs them in one process.
PYTEST_WORKERS ?= 4
PYTEST_ARGS ?= -q -n $(PYTEST_WORKERS) --dist loadgroup --durations=10
# -O1: what the ASan documentation recommends for speed (Debug alone is -O0).
ASAN_CFLAGS ?= -g -O1

.PHONY: all deps build build-asan run test unit protocol unit-asan protocol-asan fuzz install clean

all: build

deps:
	@./scripts/install-deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

build-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPETREL_SANITIZE=ON \
		-DCMAKE_C_FLAGS_DEBUG="$(ASAN_CFLAGS)" >/dev/null
	@cmake --build $(ASAN_BUILD) -j$(JOBS)

run: deps build
	@./scripts/run-demo.sh $(BUILD)

unit: build
	@ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

protocol: build
	@PETREL_BIN_DIR=$(CURDIR)/$(BUILD) $(PYTHON) -m pytest $(PYTEST_ARGS) tests/protocol

unit-asan: build-asan
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j$(JOBS)

protocol-asan: build-asan
	@PETREL_BIN_DIR=$(CURDIR)/$(ASAN_BUILD) PETREL_SANITIZED=1 \
		$(PYTHON) -m pytest $(PYTEST_ARGS) tests/protocol

test: deps
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory protocol
	@$(MAKE) --no-print-directory unit-asan
	@$(MAKE) --no-print-directory protocol-asan

fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DPETREL_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	@cmake --build $(FUZZ_BUILD) -j$(JOBS)
	@./scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

install: build
	@./scripts/install.sh $(BUILD) $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
