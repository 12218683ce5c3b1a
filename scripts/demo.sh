#!/usr/bin/env bash
# `make run`: the whole story against a local emulator, nothing else touched.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/moto.sh
bin=target/debug/secretwire
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "emulator on $AWS_ENDPOINT_URL; demo bootstrap (cluster, key, running services: not part of secretwire)"
.venv/bin/python scripts/demo_bootstrap.py "$AWS_ENDPOINT_URL"
# The registry credentials come from the controller's environment (fromEnv), never from the repo.
export REGISTRY_CREDENTIALS='{"username":"acme-ci","password":"demo-only-not-a-real-password"}'

step "secretwire validate"
$bin validate
step "secretwire plan"
$bin plan
step "secretwire apply"
$bin apply
step "secretwire render web   (the task definition apply registered)"
$bin render web -q | head -40
step "secretwire apply   (again: nothing to do, zero writes)"
$bin apply
