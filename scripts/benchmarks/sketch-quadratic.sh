#!/usr/bin/env bash
# The sketch estimators beside Algorithm 2 on the quadratic predictor
# (5.2.1, n = 50, K of rank 3), on the same probes: M estimates per N of
# K and Tr K against the exact NTK, with the exact quotient (the sketches'
# default) and with the forward one.
#
#   scripts/benchmarks/sketch-quadratic.sh [M=100] [out=runs/sketch-quadratic]
source "$(dirname "$0")/../lib.sh"
M=${1:-100}
out=${2:-runs/sketch-quadratic}
build
"$coordinator" study errors --problem quadratic --seed 1 --M "$M" \
  --N 1,2,3,4,5,6,8,10,20,50,100,200 \
  --variants gaussian,gaussian:nystrom,gaussian:xnystrace,gaussian:forward:nystrom,gaussian:forward:xnystrace \
  --out "$out"
