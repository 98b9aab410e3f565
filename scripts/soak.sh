#!/usr/bin/env bash
# Soak test (not part of CI): one Parley node on a real Redis, a separate
# simulated payment provider, and `parley load` running chat with injected
# panics plus payments for DURATION seconds (default 1800), while the script
# kills Redis (SIGKILL) and restarts it, and the provider has outage windows.
# Every 10 s it samples the server's RSS and sessions. It passes when both load
# runs pass their own checks (no acked message lost or duplicated, money
# conserved) and the server's RSS in the last fifth of the run is within 20 %
# of its level after warm-up (the second fifth).
#
#   scripts/soak.sh [DURATION_SECS] [OUT_DIR]
#
# Needs: a release build (cargo build --release), redis-server. Loopback only;
# every process it starts is stopped when it exits (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-1800}
out=${2:-soak-$(date +%Y%m%d-%H%M%S)}
bin=target/release/parley
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v redis-server >/dev/null || { echo "install redis-server" >&2; exit 2; }
(( duration >= 120 && duration <= 4 * 3600 )) || { echo "DURATION must be 120..14400 s" >&2; exit 2; }
mkdir -p "$out"
work=$(mktemp -d)
pids=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -n ${redis_pid:-} ]] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" | tee -a "$out/events.log"; }

redis_port=$(free_port)
start_redis() {
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" \
    --appendonly yes --appendfsync always >"$out/redis.log" 2>&1 &
  redis_pid=$!
  for _ in $(seq 100); do
    redis-cli -p "$redis_port" ping 2>/dev/null | grep -q PONG && return
    sleep 0.1
  done
  echo "redis-server did not start" >&2
  exit 1
}
start_redis
log "redis on $redis_port"

# Provider outages: a 30 s one at a sixth of the run, a 60 s one at half, a
# 30 s one at five sixths (it answers 503 inside the windows).
provider_port=$(free_port)
s1=$((duration / 6)); s2=$((duration / 2)); s3=$((duration * 5 / 6))
"$bin" provider --listen "127.0.0.1:$provider_port" --latency-ms 5 \
  --outage "$s1-$((s1 + 30))" --outage "$s2-$((s2 + 60))" --outage "$s3-$((s3 + 30))" \
  >"$out/provider.log" 2>&1 &
pids+=($!)

port=$(free_port)
PARLEY__STORAGE__BACKEND=redis \
PARLEY__STORAGE__REDIS_URL="redis://127.0.0.1:$redis_port/" \
PARLEY__STORAGE__REDIS_PREFIX="soak:" \
PARLEY__AUTH__TOKEN_SECRET="soak-test-secret-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
PARLEY__AUTH__ADMINS=admin \
PARLEY__FAULTS__ENABLED=true \
PARLEY__PAYMENTS__PROVIDER_URL="http://127.0.0.1:$provider_port" \
PARLEY__SERVER__NODE_ID=soak \
  "$bin" serve --listen "127.0.0.1:$port" >"$out/server.log" 2>&1 &
server_pid=$!
pids+=("$server_pid")
for _ in $(seq 200); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
log "server pid $server_pid on $port"

target="http://127.0.0.1:$port"
# 200 messages/s into 10 groups of 20 (4,000 deliveries/s), a panic in some
# conversation actor every 2 s; 20 payments/s among 50 payers.
"$bin" load chaos --target "$target" --duration "$duration" --rate 200 \
  --conversations 10 --members 20 --senders 5 --fault-every-ms 2000 --drain 30 \
  --quiet --out "$out" >"$out/chaos.txt" 2>&1 &
chaos_pid=$!
pids+=("$chaos_pid")
"$bin" load payments --target "$target" --duration "$duration" --rate 20 --payers 50 \
  --drain 120 --quiet --out "$out" >"$out/payments.txt" 2>&1 &
payments_pid=$!
pids+=("$payments_pid")

# Sampler: seconds since start, server RSS (KiB), sessions.
echo "t,rss_kib,sessions" >"$out/samples.csv"
(
  t0=$(date +%s)
  while kill -0 "$server_pid" 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$server_pid/status" 2>/dev/null || echo 0)
    sessions=$(curl -s "$target/metrics" | awk '/^parley_sessions_connected / {print $2}')
    echo "$(( $(date +%s) - t0 )),$rss,${sessions:-}" >>"$out/samples.csv"
    sleep 10
  done
) &
pids+=($!)

# Redis is killed at a third of the run and restarted 5 s later on the same
# data (append-only file, fsynced on every write).
sleep $((duration / 3))
log "killing redis (SIGKILL)"
kill -9 "$redis_pid"
wait "$redis_pid" 2>/dev/null || true
sleep 5
start_redis
log "redis restarted"

status=0
wait "$chaos_pid" || status=1
log "chaos run finished (exit $([[ $status == 0 ]] && echo 0 || echo 1))"
wait "$payments_pid" || { log "payments run failed"; status=1; }
log "payments run finished"

# Memory: mean RSS of the second fifth (after warm-up) against the last fifth.
read -r warm last peak < <(awk -F, -v d="$duration" 'NR > 1 && $2 > 0 {
    if ($1 >= d / 5 && $1 < 2 * d / 5) { w += $2; nw++ }
    if ($1 >= 4 * d / 5 && $1 <= d) { l += $2; nl++ }
    if ($2 > p) p = $2
  } END { printf "%d %d %d\n", (nw ? w / nw : 0), (nl ? l / nl : 0), p }' "$out/samples.csv")
log "RSS after warm-up ${warm} KiB, last fifth ${last} KiB, peak ${peak} KiB"
if (( warm == 0 || last > warm * 12 / 10 )); then
  log "memory grew more than 20 %"
  status=1
fi
grep -h -E "lost|duplicat|conserved|restarts|panics|messages acked|payments completed|payments failed" \
  "$out/chaos.txt" "$out/payments.txt" | tee -a "$out/events.log" || true
log "soak $([[ $status == 0 ]] && echo PASSED || echo FAILED); reports in $out"
exit "$status"
