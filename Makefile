# make demo   installs what it needs, builds, and runs a local push/change/push/rollback
# make test   installs what it needs and runs the whole test suite (and the static-binary check)
# make check  builds and runs the unit tests only: no root, no servers, no integration tests
# make fuzz   runs each fuzz target for FUZZ_SECONDS (default 45) seconds (see fuzz/README.md)
# make deb    builds the static binary and a .deb around it, in dist/
# make man    writes dist/roll.1, generated from the help of the binary `make build` makes
# make asan   builds roll and its tests with AddressSanitizer in .build-asan and runs the SSH tests (not part of make test)
# make clean  removes every build folder, dist/ and the stamped version
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: demo test check fuzz build version deps clean static check-static deb man asan

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

# The unit-test targets: every Tests/Roll*Tests folder but RollIntegrationTests (which runs
# sshd, network namespaces and the roll binary), found anew each time so a new target is in.
# ChannelPumpTests, in RollSSHTests, creates a user and logs in to real sshd and Dropbear:
# skipped too. On Linux all test targets link into one test binary, so this builds the
# integration tests as well and runs only the rest.
empty :=
space := $(empty) $(empty)
UNIT_TESTS := $(filter-out RollIntegrationTests,$(notdir $(wildcard Tests/Roll*Tests)))
CHECK_SKIP ?= ChannelPumpTests
check:
	$(SWIFT) test --disable-xctest --filter '^($(subst $(space),|,$(strip $(UNIT_TESTS))))\.' --skip '$(CHECK_SKIP)'

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

man: build
	packaging/build-man .build/debug/roll dist/roll.1

build: version
	$(SWIFT) build --build-tests

# git describe into an ignored header that the build compiles in (scripts/stamp-version).
version:
	@scripts/stamp-version >/dev/null

deps:
	scripts/install-deps.sh

# The fuzz package builds in .build-fuzz (fuzz/run); fuzz/.build is a plain swift build there.
clean:
	rm -rf .build .build-* .build_* dist fuzz/.build fuzz/.build-* Sources/CRollSystem/roll_version.h
