#!/usr/bin/env bash
# The docker-compose.yml topology as local processes, for machines without a
# Docker engine: three nats-server processes (built from the nats-server
# module that go.mod pins) clustered on loopback ports with deploy/nats/nats.conf
# (route authentication), one coordinator running a short training job, and
# SAMPLERS sampler processes, each with its own nkey and identity
# (sampler-1 …), drawn for this run by deploy/credentials as
# deploy/secrets.sh does. Everything it starts is stopped when it ends,
# however it ends. It needs bash and Go, nothing else.
#
#   scripts/cluster.sh [out-dir] [-- extra coordinator train flags]
#
# Environment: STEPS (default 20), SAMPLERS (16), BASE_PORT (14222: client
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
samplers=${SAMPLERS:-16}
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

# One key per identity and the route password, for this run only; the
# servers read the users from beside their configuration.
secrets=$work/secrets
go run ./deploy/credentials --samplers "$samplers" --out "$secrets" --root "$work" >/dev/null
cp deploy/nats/nats.conf "$secrets/"
export NTKBUS_ROUTE_PASSWORD=$(cat "$secrets/route.password")
routes=""
for i in 0 1 2; do
  routes+="${routes:+, }nats-route://route:$NTKBUS_ROUTE_PASSWORD@127.0.0.1:$((base+100+i))"
done
urls=""
for i in 0 1 2; do
  port=$((base+i))
  NATS_NAME=nats-$((i+1)) NATS_LISTEN=127.0.0.1:$port NATS_HTTP=127.0.0.1:$((base+200+i)) \
  NATS_CLUSTER_LISTEN=127.0.0.1:$((base+100+i)) NATS_ROUTES="[$routes]" \
    "$bin/nats-server" -c "$secrets/nats.conf" >"$out/nats-$((i+1)).log" 2>&1 &
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
echo "samplers sampler-1 … sampler-$samplers start, each with its own key"

sampler_pids=()
for i in $(seq "$samplers"); do
  "$bin/sampler" --nats "$urls" --nkey "$secrets/sampler-$i.nk" --identity "sampler-$i" --name "sampler-$i" \
    --replicas 1 >"$out/sampler-$i.log" 2>&1 &
  sampler_pids+=($!)
  pids+=($!)
done

"$bin/coordinator" train --problem wave --layers 2,64,64,64,1 --steps "$steps" \
  --init-probes 32 --probes 16 --alpha 0.01 --exact-every 5 --verify 0.05 \
  --nats "$urls" --nkey "$secrets/coordinator.nk" --samplers 0 --out "$out/train" "$@"

echo "stopping the samplers (they finish what they hold)"
kill -TERM "${sampler_pids[@]}"
for pid in "${sampler_pids[@]}"; do wait "$pid" || true; done
tail -q -n 1 "$out"/sampler-*.log | head -n 3
echo "done: results in $out/train"
