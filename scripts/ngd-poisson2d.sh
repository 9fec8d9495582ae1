#!/usr/bin/env bash
# Natural gradient against Adam, from the same seed and points.
#
# poisson2d: −Δu = 2π² sin(πx) sin(πy) on (0,1)², u = 0 on the boundary,
# 2→32→1 tanh, 900 interior and 120 boundary points (fixed):
#   adam      Adam, η = 10⁻³ decayed 0.9 every 1000 steps, plain loss
#   adam-ntk  the same with estimated NTK weights (Algorithm 3)
#   ngd       exact K (here p < n: J's columns, solved in parameter space),
#             automatic damping, line search
#   sngd      the Nyström K̂ of 64 probe columns per step, Woodbury
# poisson1d with 200 interior points (1→100→1 tanh, p = 301 > n = 202: the
# structured K in function space): adam against ngd.
#
#   scripts/ngd-poisson2d.sh [out=runs/ngd-poisson2d] [adam steps=20000] [ngd steps=300]
#
# Figures: <out>/poisson2d.png and <out>/poisson1d.png, the relative L²
# error against step and against wall-clock time; every run's own figures
# in its folder.
source "$(dirname "$0")/lib.sh"
out=${1:-runs/ngd-poisson2d}
adam_steps=${2:-20000}
ngd_steps=${3:-300}
build
mkdir -p "$out"
p2=(--problem poisson2d --seed 1 --log-level warn --local)
"$coordinator" train "${p2[@]}" --weights fixed --optimizer adam --steps "$adam_steps" --error-every 100 --out "$out/adam"
"$coordinator" train "${p2[@]}" --weights estimate --optimizer adam --steps "$adam_steps" --error-every 100 --out "$out/adam-ntk"
"$coordinator" train "${p2[@]}" --weights fixed --optimizer ngd --steps "$ngd_steps" --error-every 1 --out "$out/ngd"
"$coordinator" train "${p2[@]}" --weights fixed --optimizer sngd --probes 64 --steps "$ngd_steps" --error-every 1 --out "$out/sngd"
"$coordinator" plot --compare "$out/adam,$out/adam-ntk,$out/ngd,$out/sngd" \
  --labels "Adam,Adam + NTK weights (Alg. 3),ngd (exact K),sngd (64 columns)" --out "$out/poisson2d.png"

p1=(--problem poisson1d --points 200,1,1 --seed 1 --log-level warn --local)
"$coordinator" train "${p1[@]}" --weights fixed --optimizer adam --steps "$adam_steps" --error-every 100 --out "$out/poisson1d-adam"
"$coordinator" train "${p1[@]}" --weights fixed --optimizer ngd --steps "$ngd_steps" --error-every 1 --out "$out/poisson1d-ngd"
"$coordinator" plot --compare "$out/poisson1d-adam,$out/poisson1d-ngd" --labels "Adam,ngd (exact K)" --out "$out/poisson1d.png"
