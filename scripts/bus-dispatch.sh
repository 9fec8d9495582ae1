#!/usr/bin/env bash
# How work crosses the bus, measured for docs/cluster.md:
#   1. the first minutes of the headline run's dispatch: initial probes and
#      one step of the wave network on the coordinator's two in-process
#      samplers (16 + 16 probes), with the bus counters (assignments per
#      result; before pulls, offers to a queue group took 9,234 for these);
#   2. dispatch alone at 16 samplers: batches per second and messages per
#      batch, ntkbus's pull against JetStream's work queue (Go benchmarks);
#   3. JetStream's acknowledgements are not the holder's (a test).
# Writes scripts/results/bus-dispatch.txt with the commit and the build.
#
#   scripts/bus-dispatch.sh
source "$(dirname "$0")/lib.sh"
build
out=$root/scripts/results/bus-dispatch.txt
run=$(mktemp -d)
{
  echo "# scripts/bus-dispatch.sh at $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet || echo '+dirty'), $(date -u +%Y-%m-%dT%H:%MZ)"
  "$coordinator" version
  echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
  echo
  echo "## 1. wave network, 16 initial probes and a step of 16, two in-process samplers"
  start=$(date +%s)
  "$coordinator" train --problem wave --steps 1 --init-probes 16 --probes 16 --out "$run/wave" --log-level info 2>&1 |
    grep -o 'bus: .*' || true
  echo "wall clock: $(( $(date +%s) - start )) s"
  echo
  echo "## 2. dispatch alone, 16 samplers, 2000 batches of trivial work per round"
  echo "(ntkbus: real samplers computing quadratic probes, one per batch; JetStream: bytes"
  echo "fetched, acknowledged and sent back; run in turns, as the machine's load drifts)"
  (cd "$root" && go test -c -o "$run/natsbus.test" ./coordinator/natsbus)
  for _ in 1 2 3; do
    for b in Pull JetStream; do
      (cd "$root/coordinator/natsbus" && "$run/natsbus.test" -test.run '^$' -test.bench "Dispatch16$b\$" -test.benchtime 5x) |
        grep -E '^Benchmark'
    done
  done
  echo
  echo "## 3. another client's +TERM drops a batch held on JetStream's work queue"
  (cd "$root" && go test ./coordinator/natsbus -run 'TestJetStreamAcksAreNotConfinedToTheHolder' -count 1 -v) |
    grep -E '^(--- |ok|FAIL)'
} | tee "$out"
rm -rf "$run"
echo "wrote $out"
