#!/usr/bin/env bash
# The natural gradient against honest baselines on poisson2d, from the
# same seed and points, and its accuracy in both BLAS builds:
#
# poisson2d: −Δu = 2π² sin(πx) sin(πy) on (0,1)², u = 0 on the boundary,
# 2→32→1 tanh (p = 129), 900 interior and 120 boundary points (fixed),
# the per-block mean of squares (--loss mean, the default with fixed
# weights):
#   ngd        defaults: J's SVD (p ≤ n), automatic damping, the line
#              search from the last step's η, the stall rule; seeds 1–3,
#              in the pure-Go and the OpenBLAS build
#   sngd       the Nyström K̂ of 64 probe columns per step
#   lbfgs      gonum's L-BFGS (Moré–Thuente), stall rule
#   adam-LR    Adam, η = LR decayed ×0.9 every 1000 steps (PINNsNTK's
#              schedule), for LR = 10⁻⁴ … 10⁻², 20000 steps
#
#   scripts/ngd-poisson2d.sh [out=runs/ngd-poisson2d] [adam steps=20000]
#
# Results: <out>/ngd-poisson2d.md (the table, error at equal wall-clock
# time), <out>/ngd-blas.md (pure Go against OpenBLAS), and the figure
# <out>/ngd-poisson2d.png (error against step and against seconds).
source "$(dirname "$0")/lib.sh"
out=${1:-runs/ngd-poisson2d}
adam_steps=${2:-20000}
build
(cd "$root" && CGO_LDFLAGS= go build -o "$bin/coordinator-go" ./cmd/coordinator)
mkdir -p "$out"
commit=$(git -C "$root" rev-parse --short HEAD)
export OPENBLAS_NUM_THREADS=1
p2=(--problem poisson2d --log-level warn --figures=false --weights fixed)

for s in 1 2 3; do
  "$coordinator" train "${p2[@]}" --seed "$s" --optimizer ngd --steps 1000 --error-every 1 --out "$out/ngd-openblas-$s"
  "$bin/coordinator-go" train "${p2[@]}" --seed "$s" --optimizer ngd --steps 1000 --error-every 1 --out "$out/ngd-go-$s"
done
"$coordinator" train "${p2[@]}" --seed 1 --optimizer sngd --probes 64 --steps 1000 --error-every 1 --local --out "$out/sngd"
"$coordinator" train "${p2[@]}" --seed 1 --optimizer lbfgs --steps 20000 --error-every 10 --out "$out/lbfgs"
adam=()
for lr in 1e-4 3e-4 1e-3 3e-3 1e-2; do
  "$coordinator" train "${p2[@]}" --seed 1 --optimizer adam --lr "$lr" --steps "$adam_steps" --error-every 100 --out "$out/adam-$lr"
  adam+=("Adam η=$lr=$out/adam-$lr")
done

python3 "$root/scripts/ngd_table.py" "$out/ngd-poisson2d.md" \
  "poisson2d, seed 1: ngd against the baselines (commit $commit; OpenBLAS build unless named)" \
  "ngd=$out/ngd-openblas-1" "ngd (pure Go)=$out/ngd-go-1" "sngd, 64 columns=$out/sngd" "L-BFGS=$out/lbfgs" "${adam[@]}"
python3 "$root/scripts/ngd_table.py" "$out/ngd-blas.md" \
  "poisson2d ngd with its defaults in both builds (commit $commit)" \
  "seed 1, OpenBLAS=$out/ngd-openblas-1" "seed 1, pure Go=$out/ngd-go-1" \
  "seed 2, OpenBLAS=$out/ngd-openblas-2" "seed 2, pure Go=$out/ngd-go-2" \
  "seed 3, OpenBLAS=$out/ngd-openblas-3" "seed 3, pure Go=$out/ngd-go-3"
best=$(python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
runs = [f"{out}/adam-{lr}" for lr in ["1e-4", "3e-4", "1e-3", "3e-3", "1e-2"]] + [f"{out}/lbfgs"]
print(min(runs, key=lambda d: json.load(open(d + "/summary.json"))["error_l2"]))
PY
)
"$coordinator" plot --compare "$out/ngd-openblas-1,$out/ngd-go-1,$out/sngd,$out/lbfgs,$best" \
  --labels "ngd (OpenBLAS),ngd (pure Go),sngd (64 columns),L-BFGS,best Adam or L-BFGS: $(basename "$best")" --out "$out/ngd-poisson2d.png"
