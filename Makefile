# make demo   installs what it needs, builds, and runs a local push/change/push/rollback
# make test   installs what it needs and runs the whole test suite
SWIFT ?= swift
export PATH := $(PATH):/opt/swift/usr/bin

.PHONY: demo test build deps clean

demo: deps build
	scripts/demo.sh .build/debug/roll

test: deps build
	$(SWIFT) test --disable-xctest
	DEMO_DIR=$$(mktemp -d) scripts/demo.sh .build/debug/roll >/dev/null && echo "demo: passed"

build:
	$(SWIFT) build --build-tests

deps:
	scripts/install-deps.sh

clean:
	rm -rf .build
