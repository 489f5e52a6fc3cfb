#!/usr/bin/env bash
# The scale-out topology as local processes: a private redis-server, the stand-in provider,
# two orchestrator instances and two handoff workers. Prints the URLs; Ctrl-C (or any of the
# processes exiting) stops everything.
#
# Environment (defaults in brackets): REDIS_PORT [6390], PROVIDER_PORT [8090],
# INSTANCE_PORTS ["8081 8082"], CALLBRIDGE_API_KEY [sk-local], CALLBRIDGE_HANDLER [built-in],
# PYTHON [.venv/bin/python].
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
REDIS_PORT=${REDIS_PORT:-6390}
PROVIDER_PORT=${PROVIDER_PORT:-8090}
read -r -a INSTANCE_PORTS <<<"${INSTANCE_PORTS:-8081 8082}"
export CALLBRIDGE_API_KEY=${CALLBRIDGE_API_KEY:-sk-local}
REDIS_URL="redis://127.0.0.1:${REDIS_PORT}/0"
PROVIDER_URL="http://127.0.0.1:${PROVIDER_PORT}"
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/callbridge-cluster.XXXXXX")
pids=()
names=()

command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
[[ -x $PYTHON ]] || { echo "$PYTHON not found: run 'make run' or set PYTHON" >&2; exit 1; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port already taken would have our process fail to bind while the wait below talks to
# whoever holds it (say, a shared Redis): refuse up front instead.
for port in "$REDIS_PORT" "$PROVIDER_PORT" "${INSTANCE_PORTS[@]}"; do
  if listening "$port"; then
    echo "port $port is already in use; choose another (see the top of $0)" >&2
    exit 1
  fi
done

stop_all() {
  trap - EXIT INT TERM
  echo "stopping (logs stay in $LOGS)"
  # Newest first: orchestrators and workers finish before Redis and the provider go.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null || true
  done
  wait || true
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: run in the background, output in $LOGS/NAME.log.
start() {
  local name=$1
  shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  pids+=($!)
  names+=("$name")
}

# wait_port NAME PORT: until the last started process listens, or fail if it died.
wait_port() {
  local pid=${pids[-1]}
  for _ in $(seq 300); do
    listening "$2" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "$1 exited; see $LOGS/$1.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "$1 is not listening on $2 after 30 s; see $LOGS/$1.log" >&2
  exit 1
}

start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no
wait_port redis "$REDIS_PORT"

start provider "$PYTHON" -m service.cli provider --port "$PROVIDER_PORT"
wait_port provider "$PROVIDER_PORT"

for n in "${!INSTANCE_PORTS[@]}"; do
  name="orchestrator-$((n + 1))"
  start "$name" env \
    CALLBRIDGE_PROVIDER=openai \
    CALLBRIDGE_PROVIDER_URL="$PROVIDER_URL" \
    CALLBRIDGE_QUEUE="$REDIS_URL" \
    CALLBRIDGE_EMBEDDED_WORKER=false \
    CALLBRIDGE_INSTANCE_ID="$name" \
    CALLBRIDGE_PORT="${INSTANCE_PORTS[n]}" \
    "$PYTHON" -m service.cli serve
  wait_port "$name" "${INSTANCE_PORTS[n]}"
done

for n in 1 2; do
  start "worker-$n" env CALLBRIDGE_QUEUE="$REDIS_URL" "$PYTHON" -m service.cli worker --name "worker-$n"
done

cat <<INFO
callbridge cluster is up (logs in $LOGS)
  redis           $REDIS_URL
  provider        $PROVIDER_URL
$(for n in "${!INSTANCE_PORTS[@]}"; do
  printf '  orchestrator-%d  http://127.0.0.1:%s\n' $((n + 1)) "${INSTANCE_PORTS[n]}"
done)
  workers         worker-1, worker-2 (handler: ${CALLBRIDGE_HANDLER:-built-in})
Try:  $PYTHON -m service.cli dial http://127.0.0.1:${INSTANCE_PORTS[0]}/v1/calls --seconds 3
Ctrl-C stops everything.
INFO

# Any process exiting (a crash, or a port taken meanwhile) takes the whole cluster down.
wait -n || true
for i in "${!pids[@]}"; do
  kill -0 "${pids[i]}" 2>/dev/null || echo "${names[i]} exited; see $LOGS/${names[i]}.log" >&2
done
exit 1
