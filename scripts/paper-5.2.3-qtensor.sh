#!/usr/bin/env bash
# The paper's 5.2.3: the Q-tensor flow of a liquid crystal on (−2,2)²×[0,2],
# two outputs (Q11, Q12), 3×500 tanh, points resampled every step (300
# interior, 300 initial, 10 per side). Trains the NTK-weighted PINN
# (Algorithm 3) and a plain PINN (fixed weights) with the same seed, then
# draws the light intensity |λ₁ (v₁·e₁)| and the directors at t = 0, 0.5 and
# 2 for both under the finite-difference reference (Figure 10), and prints
# each run's error against that reference.
#
#   scripts/paper-5.2.3-qtensor.sh [steps=300] [out=runs/paper-5.2.3] [-- extra train flags]
source "$(dirname "$0")/lib.sh"
steps=${1:-300}
out=${2:-runs/paper-5.2.3}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
build
common=(--problem qtensor --seed 1 --optimizer adam --lr 1e-3 --decay 0.9 --decay-every 1000 --steps "$steps")
"$coordinator" train "${common[@]}" --weights estimate --alpha 1e-3 --init-probes 100 --probes 1 \
  --listen 127.0.0.1:0 --out "$out/ntk-pinn" "$@"
"$coordinator" train "${common[@]}" --weights fixed --out "$out/pinn" "$@"
"$coordinator" plot --qtensor "$out/ntk-pinn,$out/pinn" --labels NTK-PINN,PINN --out "$out/figure10.png"
