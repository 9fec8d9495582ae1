#!/usr/bin/env bash
# The paper's 5.2.2: u_tt − 4u_xx = 0 on (0,1)², 3×500 tanh network,
# collocation points resampled every step (300 interior, 300 for u_t(x,0),
# 100 for u(x,0), 100 per side), Algorithm 3 with α = 1e−3, probes computed
# by samplers on an embedded NATS server, and the exact weights every 50
# steps as the reference.
#
#   scripts/paper-5.2.2-wave.sh [steps=300] [out=runs/paper-5.2.2] [-- extra train flags]
#
# The paper trains for 80,000 steps; the default is a short run that
# finishes in minutes here. Figures: weights.png (Figure 8: estimated λ with
# intervals, exact λ dashed), solution.png (Figure 9: prediction, truth and
# error), loss.png, error.png.
source "$(dirname "$0")/lib.sh"
steps=${1:-300}
out=${2:-runs/paper-5.2.2}
shift $(( $# > 2 ? 2 : $# ))
[ "${1:-}" = "--" ] && shift
build
"$coordinator" train --problem wave --weights estimate --alpha 1e-3 --init-probes 100 --probes 1 \
  --exact-every 50 --optimizer adam --lr 1e-3 --decay 0.9 --decay-every 1000 \
  --steps "$steps" --listen 127.0.0.1:0 --out "$out" "$@"
