#!/usr/bin/env bash
# The paper's wave problem written as a file (problems/wave.toml) against
# the built-in one, on the wave network (n = 900, p = 503,001): a probe
# (Jᵀg, then R at θ + Δt Jᵀg) and a plain training step (fixed weights,
# Adam), each pair timed call by call in turn within one process
# (BenchmarkWaveFileProbeRatio in model, BenchmarkWaveFileStepRatio in
# coordinator), so that both sides see the same moments of a machine whose
# speed drifts; each repetition reports the median over its pairs of calls
# of their ratio (a burst of load slows a pair, not the median) and the
# ratio of the sums. The issue asks for the file within 5% of the built-in.
# BenchmarkWaveFileOutputs times, per point, all that differs: F and ∂F/∂u.
#
#   scripts/bench-problem-files.sh [calls=40] [reps=3]
#
# Writes scripts/results/problem-files-bench.txt: the build, the raw
# benchmark lines of every repetition, and the median ratios. OpenBLAS
# when it is installed (BLAS=gonum for pure Go), one thread (-cpu 1).
source "$(dirname "$0")/lib.sh"
calls=${1:-40}
reps=${2:-3}
tags=()
if [ "${BLAS:-openblas}" = openblas ] && ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then
  export CGO_LDFLAGS=-lopenblas OPENBLAS_NUM_THREADS=1
  openblas_coretype
  tags=(-tags openblas)
  blas=openblas
else
  blas=gonum
fi
cd "$root"
commit=$(git rev-parse --short HEAD)
[ -n "$(git status --porcelain --untracked-files=no | head -c1)" ] && commit="$commit (modified)"
go test "${tags[@]}" -c -o "$bin/model.test" ./model
go test "${tags[@]}" -c -o "$bin/coordinator.test" ./coordinator
result="$root/scripts/results/problem-files-bench.txt"
raw=$(mktemp)
# What the file changes in a pass: F and ∂F/∂u per point, compiled
# closures against the built-in's Go functions.
(cd model && "$bin/model.test" -test.run '^$' -test.bench 'WaveFileOutputs' -test.cpu 1) | grep '^Benchmark' | tee -a "$raw"
for r in $(seq "$reps"); do
  (cd model && "$bin/model.test" -test.run '^$' -test.bench 'WaveFileProbeRatio' -test.cpu 1 -test.benchtime "${calls}x") | grep '^Benchmark' | tee -a "$raw"
  (cd coordinator && "$bin/coordinator.test" -test.run '^$' -test.bench 'WaveFileStepRatio' -test.cpu 1 -test.benchtime "${calls}x") | grep '^Benchmark' | tee -a "$raw"
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
probe=$(grep WaveFileProbeRatio "$raw" | awk '{for (i=1;i<=NF;i++) if ($i=="file/builtin") print $(i-1)}' | median)
step=$(grep WaveFileStepRatio "$raw" | awk '{for (i=1;i<=NF;i++) if ($i=="file/builtin") print $(i-1)}' | median)
{
  echo "# problems/wave.toml against the built-in wave, call by call in one process"
  echo "# commit $commit, BLAS $blas (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-}), -cpu 1, $calls calls per side per repetition, $reps repetitions, $(date -u +%Y-%m-%dT%H:%MZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "# scripts/bench-problem-files.sh $calls $reps"
  cat "$raw"
  echo "median over the repetitions of file/builtin (each the median over its pairs of calls): probe $probe, plain step $step"
} > "$result"
rm -f "$raw"
echo "wrote $result"
tail -1 "$result"
