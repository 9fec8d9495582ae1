#!/usr/bin/env bash
# The paper's 5.2.1: the quadratically parameterized predictor (θ⊙θ)·(1,x,x²)
# fitted to 50 noisy points.
#
#   scripts/paper-5.2.1-quadratic.sh [steps=100000] [M=100] [out=runs/paper-5.2.1]
#
# 1. The error study (Figures 5 and 6): M independent estimates of K and
#    Tr K for N = 1 … 20000 probes against the exact NTK at θ_0, with the
#    O(1/N) line and fitted slopes, and K̂ at 1, 2000 and 20000 probes.
# 2. Algorithm 3 with α = 1e−4 over the given steps, keeping the full K̂
#    moving average (Figure 7: kernels.png) and the fit (Figure 4: solution.png).
source "$(dirname "$0")/lib.sh"
steps=${1:-100000}
M=${2:-100}
out=${3:-runs/paper-5.2.1}
build
"$coordinator" study errors --problem quadratic --seed 1 --M "$M" \
  --N 1,10,20,50,100,200,500,1000,2000,5000,10000,20000 --heatmaps 1,2000,20000 \
  --out "$out/study"
"$coordinator" train --problem quadratic --seed 1 --weights estimate --alpha 1e-4 \
  --init-probes 100 --probes 1 --kernel --optimizer gd --lr 1e-3 --decay-every 0 \
  --steps "$steps" --checkpoint-every 10000 --local --out "$out/train"
