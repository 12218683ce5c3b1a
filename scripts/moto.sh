# Sourced by scripts: starts moto server on a free loopback port and exports
# AWS_ENDPOINT_URL and demo credentials. The server stops when the script exits.
# AWS managed policies (AmazonECSTaskExecutionRolePolicy, ...) are loaded as on AWS.
MOTO_LOG=$(mktemp)
# Services start with every desired task running, so their deployments are COMPLETED
# (moto never advances one; without this they stay IN_PROGRESS for ever).
MOTO_IAM_LOAD_MANAGED_POLICIES=true MOTO_ECS_SERVICE_RUNNING=2 .venv/bin/moto_server -H 127.0.0.1 -p 0 >"$MOTO_LOG" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null; rm -f "$MOTO_LOG"' EXIT
for _ in $(seq 1 100); do
  AWS_ENDPOINT_URL=$(grep -o 'http://127.0.0.1:[0-9]*' "$MOTO_LOG" | head -1) && [ -n "$AWS_ENDPOINT_URL" ] && break
  sleep 0.1
done
[ -n "${AWS_ENDPOINT_URL:-}" ] || { echo "moto did not start:"; cat "$MOTO_LOG"; exit 1; }
export AWS_ENDPOINT_URL AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
