# secretwire: every target a person runs is the one CI runs.
SHELL := /bin/bash
VENV := .venv
EMULATOR_STAMP := $(VENV)/.installed-$(shell sha256sum scripts/emulator-requirements.txt | cut -c1-12)
CARGO ?= cargo

.PHONY: build run test lint audit venv help bench fuzz static image

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

build: ## compile secretwire (debug profile)
	$(CARGO) build

$(EMULATOR_STAMP): scripts/emulator-requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r scripts/emulator-requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

venv: $(EMULATOR_STAMP) ## install the local AWS emulator (moto server, pinned) into .venv/

run: build venv ## demo: start moto on a free loopback port, then validate, plan, apply, apply again
	scripts/demo.sh

test: venv ## unit and integration tests against moto, then the integration tests again behind the AWS-shape proxy
	$(VENV)/bin/python scripts/gen_access_levels.py --check data/access-levels.txt
	$(CARGO) test --all-targets
	SECRETWIRE_AWS_SHAPE=1 $(CARGO) test --test it

lint: ## rustfmt check and clippy with warnings as errors
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

audit: ## Cargo.lock against the RustSec snapshot in ../shared (offline): no vulnerable or unmaintained crate
	command -v cargo-audit >/dev/null || $(CARGO) install cargo-audit --locked
	$(CARGO) audit --no-fetch --db ../shared/advisory-db -D warnings

STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_BIN := target/$(STATIC_TARGET)/release/secretwire

static: ## static release binary (crt-static), checked as the image ships it: file, --version, validate
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --locked --target $(STATIC_TARGET)
	scripts/check_static.sh $(STATIC_BIN)

image: ## container image secretwire:dev (musl, distroless static:nonroot); needs a running container engine
	@engine=$$(command -v docker || command -v podman || true); \
	if [ -z "$$engine" ] || ! $$engine info >/dev/null 2>&1; then \
		echo "make image: no running container engine (docker or podman); 'make static' checks the binary instead"; exit 1; fi; \
	$$engine build -t secretwire:dev . && $$engine image ls secretwire:dev

bench: venv ## benchmark at N = 10, 100, 1000 services (release build); table + bench/results.json
	$(CARGO) build --release
	$(VENV)/bin/python scripts/bench.py $(BENCH_SIZES)

FUZZ_CASES ?= 200000
CRASH_TRIALS ?= 200
FAULT_SEEDS ?= 25
fuzz: venv ## long hostile-input and fault run (not in CI): proptest cases, kill -9 trials, fault-proxy seeds
	PROPTEST_CASES=$(FUZZ_CASES) $(CARGO) test --lib fuzz
	SECRETWIRE_CRASH_TRIALS=$(CRASH_TRIALS) SECRETWIRE_CRASH_SEED=$$(date +%s) $(CARGO) test --test it crash:: -- --nocapture
	for seed in $$(seq 1 $(FAULT_SEEDS)); do \
	  SECRETWIRE_FAULT_SEED=$$seed $(CARGO) test --test it faults:: || { echo "failed with SECRETWIRE_FAULT_SEED=$$seed"; exit 1; }; \
	done
