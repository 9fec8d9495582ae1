#!/usr/bin/env bash
# The docker-compose.yml topology as local processes, for machines without a
# Docker engine: three nats-server processes (built from the nats-server
# module that go.mod pins) clustered on loopback ports with deploy/nats/nats.conf,
# one coordinator running a short training job, and "sampler --replicas 16".
# Everything it starts is stopped when it ends, however it ends.
#
#   scripts/cluster.sh [out-dir] [-- extra coordinator train flags]
#
# Environment: STEPS (default 20), REPLICAS (16), BASE_PORT (14222),
# GOFLAGS_BUILD (e.g. "-tags openblas"; set CGO_LDFLAGS=-lopenblas too).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-runs/cluster-$(date +%Y%m%d-%H%M%S)}
shift $(( $# > 0 ? 1 : 0 ))
[ "${1:-}" = "--" ] && shift
steps=${STEPS:-20}
replicas=${REPLICAS:-16}
base=${BASE_PORT:-14222}
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

export NTKBUS_COORDINATOR_PASSWORD=coordinator-local
export NTKBUS_SAMPLER_PASSWORD=sampler-local
routes="[nats-route://127.0.0.1:$((base+100)), nats-route://127.0.0.1:$((base+101)), nats-route://127.0.0.1:$((base+102))]"
urls=""
for i in 0 1 2; do
  port=$((base+i))
  NATS_NAME=nats-$((i+1)) NATS_LISTEN=127.0.0.1:$port NATS_HTTP=127.0.0.1:$((base+200+i)) \
  NATS_CLUSTER_LISTEN=127.0.0.1:$((base+100+i)) NATS_ROUTES="$routes" \
    "$bin/nats-server" -c deploy/nats/nats.conf >"$out/nats-$((i+1)).log" 2>&1 &
  pids+=($!)
  urls+="${urls:+,}nats://127.0.0.1:$port"
done

# A node is clustered when it has routes to both other nodes (servers pool
# several connections per peer, so count distinct remote servers).
peers() {
  curl -fsS "http://127.0.0.1:$((base+200+$1))/routez" 2>/dev/null |
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

NTKBUS_NATS_USER=sampler NTKBUS_NATS_PASSWORD=$NTKBUS_SAMPLER_PASSWORD \
  "$bin/sampler" --nats "$urls" --replicas "$replicas" --log-level warn >"$out/samplers.log" 2>&1 &
sampler_pid=$!
pids+=($sampler_pid)

NTKBUS_NATS_USER=coordinator NTKBUS_NATS_PASSWORD=$NTKBUS_COORDINATOR_PASSWORD \
  "$bin/coordinator" train --problem wave --layers 2,64,64,64,1 --steps "$steps" \
  --init-probes 32 --probes 16 --alpha 0.01 --exact-every 5 \
  --nats "$urls" --samplers 0 --out "$out/train" "$@"

echo "stopping the samplers (they finish what they hold)"
kill -TERM "$sampler_pid"
wait "$sampler_pid" || true
echo "done: results in $out/train"
