#!/usr/bin/env bash
# The sketch estimators against Algorithm 2 on the wave network (n = 900,
# p = 503,001), at θ₀ and at a trained θ (the final.json of a 50-step run):
# the largest relative error of any weight against `coordinator exact`, and
# the time, for hutchinson, nystrom and xnystrace at 10, 20, 50 and 200
# probes; and the sketches at 30 probes with each difference quotient.
#
#   scripts/benchmarks/sketch-wave.sh [out=runs/sketch-wave] [trained final.json]
#
# Writes $out/table.md (docs/sketch.md's table) and every estimate's JSON.
source "$(dirname "$0")/../lib.sh"
out=${1:-runs/sketch-wave}
trained=${2:-}
command -v python3 >/dev/null || { echo "needs python3 to tabulate" >&2; exit 1; }
build
mkdir -p "$out"
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
"$coordinator" snapshot --problem wave --seed 1 --out "$out/theta0.json"
if [[ -z "$trained" ]]; then
  [[ -f "$out/train/final.json" ]] ||
    "$coordinator" train --problem wave --seed 1 --steps 50 --local --out "$out/train"
  trained="$out/train/final.json"
fi
cp "$trained" "$out/trained.json"
for snap in theta0 trained; do
  "$coordinator" exact --snapshot "$out/$snap.json" --json --eigenvalues 30 >"$out/$snap-exact.json"
  for est in hutchinson nystrom xnystrace; do
    for N in 10 20 50 200; do
      f="$out/$snap-$est-$N.json"
      [[ -s "$f" ]] || "$coordinator" estimate --snapshot "$out/$snap.json" --estimator "$est" \
        --probes "$N" --seed 7 --json >"$f"
    done
  done
  for est in nystrom xnystrace; do
    for q in forward central exact; do
      f="$out/$snap-$est-$q-30.json"
      [[ -s "$f" ]] || "$coordinator" estimate --snapshot "$out/$snap.json" --estimator "$est" \
        --quotient "$q" --probes 30 --seed 7 --json >"$f"
    done
  done
done
python3 - "$out" >"$out/table.md" <<'PY'
import json, sys, os
out = sys.argv[1]
def err(snap, f):
    ex = json.load(open(os.path.join(out, snap + "-exact.json")))
    e = json.load(open(os.path.join(out, f)))
    worst = max(abs(e["weights"][b] - ex["weights"][b]) / ex["weights"][b] for b in ex["blocks"])
    return worst, e
print("| θ | estimator | quotient | 10 probes | 20 | 50 | 200 |")
print("|---|---|---|---|---|---|---|")
for snap, name in (("theta0", "θ₀"), ("trained", "50 steps")):
    for est in ("hutchinson", "nystrom", "xnystrace"):
        cells, q = [], ""
        for N in (10, 20, 50, 200):
            w, e = err(snap, f"{snap}-{est}-{N}.json")
            q = e["quotient"]
            cells.append(f"{w:.2g} ({e['seconds']:.0f} s)")
        print(f"| {name} | {est} | {q} | " + " | ".join(cells) + " |")
print()
print("| θ | estimator | forward | central | exact |")
print("|---|---|---|---|---|")
for snap, name in (("theta0", "θ₀"), ("trained", "50 steps")):
    for est in ("nystrom", "xnystrace"):
        cells = []
        for q in ("forward", "central", "exact"):
            w, e = err(snap, f"{snap}-{est}-{q}-30.json")
            cells.append(f"{w:.2g} ({e['seconds']:.0f} s)")
        print(f"| {name} | {est}, 30 probes | " + " | ".join(cells) + " |")
PY
cat "$out/table.md"
