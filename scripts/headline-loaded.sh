#!/usr/bin/env bash
# The headline command on a loaded machine (issue 20): the README's
#   go run ./cmd/coordinator train --problem wave --steps 50
# built in pure Go, run beside LOOPS (default 2) busy loops, with the bus
# counters, every warning and the exit status. Writes
# scripts/results/headline-loaded.txt with the commit and the load.
#
#   scripts/headline-loaded.sh           # LOOPS=0: the machine's own load only
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
loops=()
cleanup() {
  for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
(cd "$root" && go build -o "$work/coordinator" ./cmd/coordinator)
out=$root/scripts/results/headline-loaded.txt
for _ in $(seq "${LOOPS:-2}"); do
  (while :; do :; done) &
  loops+=($!)
done
{
  echo "# scripts/headline-loaded.sh at $(cd "$root" && git rev-parse --short HEAD)$(cd "$root" && git diff --quiet || echo '+dirty'), $(date -u +%Y-%m-%dT%H:%MZ)"
  "$work/coordinator" version
  echo "busy loops: ${LOOPS:-2}; load average before: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
  echo "command: coordinator train --problem wave --steps 50"
  start=$(date +%s)
  set +e
  "$work/coordinator" train --problem wave --steps 50 --out "$work/run" >"$work/out" 2>"$work/err"
  code=$?
  set -e
  echo "exit status $code after $(( $(date +%s) - start )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "warnings and errors: $(grep -cE '\[(WARN|ERROR)\]' "$work/err" || true)"
  grep -E '\[(WARN|ERROR)\]' "$work/err" | cut -c1-300 || true
  grep -oE '(run finished|bus): .*' "$work/err" || true
} | tee "$out"
echo "wrote $out"
