# make demo   installs what it needs, builds, and runs a local push/change/push/rollback
# make test   installs what it needs and runs the whole test suite (and the static-binary check)
# make fuzz   runs each fuzz target for FUZZ_SECONDS (default 45) seconds (see fuzz/README.md)
# make deb    builds the static binary and a .deb around it, in dist/
# make asan   builds roll and its tests with AddressSanitizer in .build-asan and runs the SSH tests (not part of make test)
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: demo test fuzz build deps clean static check-static deb asan

demo: deps build
	scripts/demo.sh .build/debug/roll

# The slow-link tests wait out shaped links and stalls for minutes on the test runner's
# threads (two on two cores): they run in a process of their own, after the rest.
test: deps build
	$(SWIFT) test --disable-xctest --skip SlowLinkTests
	$(SWIFT) test --disable-xctest --filter SlowLinkTests
	$(MAKE) fuzz
	DEMO_DIR=$$(mktemp -d) scripts/demo.sh .build/debug/roll >/dev/null && echo "demo: passed"
	$(MAKE) check-static
	packaging/build-deb dist/roll >/dev/null && echo "deb: built"

# The decoders of peer input under libFuzzer, built apart in .build-fuzz.
fuzz: deps
	SWIFT=$(SWIFT) fuzz/run

# The SSH client, its channels and the SSH pushes under AddressSanitizer (and LeakSanitizer),
# built apart in .build-asan. The integration tests run the roll binary they are told to in
# ROLL_BIN: the instrumented one, for the client and for the agent the tests install.
ASAN_TESTS ?= BuiltinSSHTests|SSHPushTests|ChannelPumpTests|SSHParsingTests
asan: deps
	$(SWIFT) build --build-tests --sanitize=address --build-path .build-asan
	ROLL_BIN=$(CURDIR)/.build-asan/debug/roll $(SWIFT) test --skip-build --sanitize=address --build-path .build-asan \
		--disable-xctest --filter '$(ASAN_TESTS)'

# One static binary in dist/ (packaging/build-static), proven to need nothing else.
static:
	packaging/build-static

check-static: static
	packaging/check-static dist/roll

deb: static
	packaging/build-deb dist/roll

build:
	$(SWIFT) build --build-tests

deps:
	scripts/install-deps.sh

clean:
	rm -rf .build
