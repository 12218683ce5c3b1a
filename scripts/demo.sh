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
step "secretwire apply --wait   (and follow the deployments it starts to their end)"
$bin apply --wait
step "secretwire render web   (the task definition apply registered)"
$bin render web -q | head -40
step "secretwire apply   (again: nothing to do, zero writes)"
$bin apply

step "the deploy rolls out (on AWS UpdateService starts this deployment; the emulator needs a nudge)"
.venv/bin/python scripts/demo_rotation.py rollout "$AWS_ENDPOINT_URL"

port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
step "secretwire run --debounce 2s   (the controller: queue, rules, then it waits for rotations)"
$bin run --listen "127.0.0.1:$port" --debounce 2s > >(sed -u 's/^/  [run] /') 2>&1 &
run_pid=$!
.venv/bin/python scripts/demo_rotation.py wait-ready "http://127.0.0.1:$port"

step "Secrets Manager rotates web/api (read by web only): RotationSucceeded on the default event bus"
.venv/bin/python scripts/demo_rotation.py rotate "$AWS_ENDPOINT_URL" web/api
step "/status: web was redeployed for the rotation and its rollout completed; worker was not redeployed"
.venv/bin/python scripts/demo_rotation.py show "http://127.0.0.1:$port" web
printf '\n  /metrics excerpt:\n'
.venv/bin/python -c "import urllib.request; print('\n'.join('    '+l for l in urllib.request.urlopen('http://127.0.0.1:$port/metrics').read().decode().splitlines() if l.startswith(('secretwire_redeploys_total', 'secretwire_events_total', 'secretwire_rollouts_total', 'secretwire_rollouts_in_progress'))))"

step "SIGTERM: the controller stops cleanly"
kill -TERM "$run_pid"
wait "$run_pid" && echo "  controller exited 0"
