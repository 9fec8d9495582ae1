#!/usr/bin/env bash
# The spectrum acceptance measurements (docs/results.md: "spectrum"):
#
#  1. the wave network (3×500 tanh, n = 900) at θ₀ and after a 50-step
#     training run: the sketch's top eigenvalues from 30 probes (exact
#     quotient) beside the exact dense K's;
#  2. n = 20,000 and 50,000 wave points on a 3×100 network: the exact
#     spectrum by randomly pivoted Cholesky on the exact diagonal and
#     columns (the dense K would need 3.2 and 20 GB for K alone), with its
#     time and peak memory; and the 30-probe sketch beside it at 20,000.
#
#   scripts/spectrum-wave.sh [out=runs/spectrum-wave]
source "$(dirname "$0")/lib.sh"
out=${1:-runs/spectrum-wave}
mkdir -p "$out"
build
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
c="$coordinator"
"$c" snapshot --problem wave --seed 1 --out "$out/theta0.json"
[ -f "$out/train/final.json" ] || "$c" train --problem wave --steps 50 --local --out "$out/train"
for s in theta0 train/final; do
  name=$(basename "$s")
  "$c" spectrum --snapshot "$out/$s.json" --probes 30 --exact --top 20 --out "$out/$name" | tee "$out/$name.txt"
done
memtime=()
[ -x /usr/bin/time ] && memtime=(/usr/bin/time -v)
for pts in 7000,7000,2000,2000,2000:20k:2000 17500,17500,5000,5000,5000:50k:500; do
  IFS=: read -r counts name rank <<<"$pts"
  "$c" snapshot --problem wave --layers 2,100,100,100,1 --points "$counts" --seed 1 --out "$out/wave$name.json"
  # The exact route alone, timed, with its peak memory.
  "${memtime[@]}" "$c" spectrum --snapshot "$out/wave$name.json" --probes 0 --exact --rank "$rank" --top 20 2>&1 \
    | grep -v '\[INFO\]' | tee "$out/wave$name-exact.txt"
done
# The sketch beside it at n = 20,000.
"$c" spectrum --snapshot "$out/wave20k.json" --probes 30 --exact --rank 2000 --top 20 --out "$out/wave20k" | tee "$out/wave20k.txt"
