#!/usr/bin/env bash
# The docker-compose.yml topology as local processes, for machines without a
# Docker engine: three nats-server processes (built from the nats-server
# module that go.mod pins) clustered on loopback ports with deploy/nats/nats.conf
# (route authentication, the coordinator and sampler users), one coordinator
# running a short training job, and "sampler --replicas 16". The passwords
# are drawn for this run. Everything it starts is stopped when it ends,
# however it ends. It needs bash and Go, nothing else.
#
#   scripts/cluster.sh [out-dir] [-- extra coordinator train flags]
#
# Environment: STEPS (default 20), REPLICAS (16), BASE_PORT (14222: client
# ports BASE..BASE+2, routes BASE+100.., monitoring BASE+200..; when one of
# them is in use the script moves all nine up by 1000, up to ten times),
# GOFLAGS_BUILD (e.g. "-tags openblas"; set CGO_LDFLAGS=-lopenblas too).
set -euo pipefail
cd "$(dirname "$0")/.."

out=runs/cluster-$(date +%Y%m%d-%H%M%S)
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
  out=$1
  shift
fi
if [ "${1:-}" = "--" ]; then shift; fi
steps=${STEPS:-20}
replicas=${REPLICAS:-16}
base=${BASE_PORT:-14222}

# in_use reports whether something listens on a loopback port (bash's
# /dev/tcp: no curl, no nc).
in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
ports_free() {
  local b=$1 p
  for p in $b $((b+1)) $((b+2)) $((b+100)) $((b+101)) $((b+102)) $((b+200)) $((b+201)) $((b+202)); do
    if in_use "$p"; then return 1; fi
  done
}
for _ in $(seq 10); do
  ports_free "$base" && break
  echo "a port in $base..$((base+202)) is in use; trying $((base+1000))"
  base=$((base+1000))
done
ports_free "$base" || { echo "no free ports found from BASE_PORT=${BASE_PORT:-14222} on (ten tries); set BASE_PORT" >&2; exit 1; }

work=$(mktemp -d)
bin=$work/bin
mkdir -p "$bin" "$out"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

echo "building nats-server, coordinator and sampler"
go build ${GOFLAGS_BUILD:-} -o "$bin/nats-server" github.com/nats-io/nats-server/v2
go build ${GOFLAGS_BUILD:-} -o "$bin/coordinator" ./cmd/coordinator
go build ${GOFLAGS_BUILD:-} -o "$bin/sampler" ./cmd/sampler

draw() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }
export NTKBUS_COORDINATOR_PASSWORD=$(draw)
export NTKBUS_SAMPLER_PASSWORD=$(draw)
export NTKBUS_ROUTE_PASSWORD=$(draw)
routes=""
for i in 0 1 2; do
  routes+="${routes:+, }nats-route://route:$NTKBUS_ROUTE_PASSWORD@127.0.0.1:$((base+100+i))"
done
urls=""
for i in 0 1 2; do
  port=$((base+i))
  NATS_NAME=nats-$((i+1)) NATS_LISTEN=127.0.0.1:$port NATS_HTTP=127.0.0.1:$((base+200+i)) \
  NATS_CLUSTER_LISTEN=127.0.0.1:$((base+100+i)) NATS_ROUTES="[$routes]" \
    "$bin/nats-server" -c deploy/nats/nats.conf >"$out/nats-$((i+1)).log" 2>&1 &
  pids+=($!)
  urls+="${urls:+,}nats://127.0.0.1:$port"
done

# get fetches a monitoring page over bash's /dev/tcp.
get() {
  local port=$1 path=$2
  exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
  printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
  cat <&3
  exec 3<&-
}
# A node is clustered when it has routes to both other nodes (servers pool
# several connections per peer, so count distinct remote servers).
peers() {
  { get $((base+200+$1)) /routez 2>/dev/null || true; } |
    grep -o '"remote_name": *"[^"]*"' | sort -u | wc -l
}
echo "waiting for the cluster to form"
for i in 0 1 2; do
  for _ in $(seq 100); do
    [ "$(peers "$i")" -ge 2 ] && break
    sleep 0.1
  done
  [ "$(peers "$i")" -ge 2 ] || { echo "nats-$((i+1)) is not routed to both peers; see $out/nats-$((i+1)).log" >&2; exit 1; }
done
echo "cluster up: $urls"
echo "more samplers join with: NTKBUS_NATS_USER=sampler NTKBUS_NATS_PASSWORD=$NTKBUS_SAMPLER_PASSWORD sampler --nats $urls"

NTKBUS_NATS_USER=sampler NTKBUS_NATS_PASSWORD=$NTKBUS_SAMPLER_PASSWORD \
  "$bin/sampler" --nats "$urls" --replicas "$replicas" >"$out/samplers.log" 2>&1 &
sampler_pid=$!
pids+=($sampler_pid)

NTKBUS_NATS_USER=coordinator NTKBUS_NATS_PASSWORD=$NTKBUS_COORDINATOR_PASSWORD \
  "$bin/coordinator" train --problem wave --layers 2,64,64,64,1 --steps "$steps" \
  --init-probes 32 --probes 16 --alpha 0.01 --exact-every 5 --verify 0.05 \
  --nats "$urls" --samplers 0 --out "$out/train" "$@"

echo "stopping the samplers (they finish what they hold)"
kill -TERM "$sampler_pid"
wait "$sampler_pid" || true
tail -n 1 "$out/samplers.log"
echo "done: results in $out/train"
