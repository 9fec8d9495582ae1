#!/usr/bin/env bash
# The operator-informed spectrum study (Gan, Li, Lin & Shi 2024, Figure 1):
# NTK eigenvalues at initialization of one tanh network per width and depth,
# at the same 400 points, for T = I, ∂x, ∂xx in 1-D and I, ∂x, Δ in 2-D,
# with a power-law and an exponential fit per curve.
#
#   scripts/study-spectrum.sh [out=runs/study-spectrum] [extra flags...]
#
# Results in the output folder: spectrum.csv, decay.csv, study.json,
# spectrum.png (the Figure 1 analogue) and decay.png (fitted rates).
source "$(dirname "$0")/lib.sh"
out=${1:-runs/study-spectrum}
shift || true
build
"$coordinator" study spectrum --points 400 --widths 64,256,1024 --depths 1,2,3 --out "$out" "$@"
