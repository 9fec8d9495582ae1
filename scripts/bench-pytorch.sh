#!/usr/bin/env bash
# ntkbus against PyTorch on the wave network (n = 900, p = 503,001), side by
# side on this machine in one run: R(θ), Jᵀv, one probe, a plain training
# step, an Algorithm 3 step, and six GEMMs of a probe's shapes (the floor
# under a probe; ours also the element-wise floor beside them, the least
# memory traffic and the tanh a probe's element-wise passes need:
# BenchmarkWaveElementFloor), on 1 thread and on 2. Our own ratios (the
# probe against its floors, an Algorithm 3 step against a plain one) are
# also timed call by call in turn within one process (BenchmarkWaveProbeRatio,
# BenchmarkWaveStepRatio), which cancels this machine's drifting speed far
# better than separate benchmarks do. The Go benchmarks and
# scripts/pytorch_wave.py alternate (Go, PyTorch, Go, PyTorch, ...) REPS
# times per thread count, each timing the mean of ITERS calls after a
# warm-up; the table shows medians over the repetitions, the ratio
# ntkbus/PyTorch (below 1: ntkbus is faster), the probe's ratio to the
# six-GEMM floor measured by each side, and the matrix-product flops per call
# (ours counted by the evaluator, PyTorch's by torch.profiler). On a machine
# shared with other work, wall times on a busy core also count the time spent
# waiting for it: on 1 thread the table also compares the processes' CPU
# times, which count only their own work (on 2 threads the CPU time adds up
# both threads, spinning included, so only wall time is compared).
#
#   scripts/bench-pytorch.sh [reps=5]
#
# Environment:
#   BLAS=openblas (default; -tags openblas, the library PyTorch uses too) or
#        BLAS=gonum (pure Go; PyTorch still runs on OpenBLAS)
#   SIMD=0         the portable build (default); SIMD=1 builds with
#                  GOEXPERIMENT=simd (the element-wise kernels four values at
#                  a time, the same bits) and runs it with
#                  GODEBUG=asyncpreemptoff=1 (see model/kernels_simd_amd64.go)
#   THREADS="1 2"  thread counts (ours: GOMAXPROCS, with OpenBLAS on one
#                  thread per call; PyTorch: torch.set_num_threads and
#                  OPENBLAS_NUM_THREADS)
#   ITERS=3        calls timed per repetition
#   NTK=1          also time the exact 900×900 K once, on 1 thread (PyTorch:
#                  900 Jacobian rows, one backward pass each, then J Jᵀ;
#                  minutes, and 3.6 GB of memory)
#   PYTHON         an interpreter with torch (default: python3 or /usr/bin/python3)
#   OMP_WAIT_POLICY  PyTorch's OpenMP threads (default PASSIVE: with libgomp's
#                  ACTIVE spinning, PyTorch on 2 threads beside OpenBLAS's own
#                  2 threads ran 4-10 times slower on this 2-core machine)
#   RAW=FILE       also keep the raw measurements (a line per work and repetition)
#   OPENBLAS_CORETYPE  OpenBLAS's kernel choice. OpenBLAS 0.3.21 does not know
#                  CPUs newer than itself and falls back to its slowest
#                  kernels ("Prescott"); when unset, this script picks
#                  SkylakeX on AVX-512 CPUs and Haswell on AVX2 ones, for both
#                  sides alike, and prints the kernel in use.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
reps=${1:-5}
threads=${THREADS:-"1 2"}
iters=${ITERS:-3}
blas=${BLAS:-openblas}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

die() { echo "bench-pytorch: $*" >&2; exit 2; }

py=${PYTHON:-}
if [ -z "$py" ]; then
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import torch' 2>/dev/null; then
      py=$cand
      break
    fi
  done
fi
[ -n "$py" ] || die "no Python with torch found: apt-get install python3-torch (or set PYTHON)"

if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  if [[ " $flags " == *" avx512f "* && " $flags " == *" avx512dq "* && " $flags " == *" avx512cd "* && " $flags " == *" avx512bw "* && " $flags " == *" avx512vl "* ]]; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    export OPENBLAS_CORETYPE=Haswell
  fi
fi

simd=${SIMD:-0}
case "$simd" in
  1) export GOEXPERIMENT=simd GODEBUG=asyncpreemptoff=1 ;;
  0) ;;
  *) die "SIMD=$simd: want 1 or 0" ;;
esac

tags=()
case "$blas" in
  openblas)
    ls /usr/lib/*/libopenblas.so >/dev/null 2>&1 || die "OpenBLAS is not installed: apt-get install libopenblas-dev (or BLAS=gonum)"
    export CGO_LDFLAGS=-lopenblas
    tags=(-tags openblas)
    ;;
  gonum) ;;
  *) die "BLAS=$blas: want openblas or gonum" ;;
esac

echo "building the benchmarks (BLAS=$blas, SIMD=$simd)"
(cd "$root" && go test "${tags[@]}" -c -o "$work/model.test" ./model)
(cd "$root" && go test "${tags[@]}" -c -o "$work/coordinator.test" ./coordinator)

core=$("$py" -c 'import ctypes
l = ctypes.CDLL("libopenblas.so.0"); l.openblas_get_corename.restype = ctypes.c_char_p
print(l.openblas_get_corename().decode())' 2>/dev/null || echo unknown)
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -z "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev+changes"
echo "ntkbus $rev, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "$(go version | cut -d' ' -f3), $("$py" -c 'import torch; print("torch", torch.__version__)'), OpenBLAS kernels: $core, CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"

# go_bench BIN REGEX THREADS: "<work> <seconds> <CPU seconds> <MFLOP>" lines.
go_bench() {
  OPENBLAS_NUM_THREADS=$3 "$1" -test.run '^$' -test.bench "$2" -test.benchtime "${iters}x" -test.cpu "$3" |
    awk '/^Benchmark/ {
      name = $1; sub(/^BenchmarkWave/, "", name); sub(/-[0-9]+$/, "", name)
      ns = ""; mf = "-"; cpu = "-"
      for (i = 3; i < NF; i++) {
        if ($(i+1) == "ns/op") ns = $i
        if ($(i+1) == "MFLOP/op") mf = $i
        if ($(i+1) == "cpu-ns/op") cpu = $i / 1e9
      }
      print name, ns / 1e9, cpu, mf
    }' |
    sed -e 's/^Residual /residual /' -e 's/^VJP /vjp /' -e 's/^Probe /probe /' -e 's/^GEMMFloor /gemm6 /' -e 's/^ElementFloor /elem_floor /' \
        -e 's/^StepPlain /step_plain /' -e 's/^StepAlg3 /step_alg3 /' -e 's/^NTK /ntk /'
}

# ratio_bench BIN REGEX THREADS: "ratio <name> <value>" lines from the
# benchmarks that time two works call by call in turn (BenchmarkWaveProbeRatio,
# BenchmarkWaveStepRatio), so both see the same moments of the machine.
ratio_bench() {
  OPENBLAS_NUM_THREADS=$3 "$1" -test.run '^$' -test.bench "$2" -test.benchtime "${iters}x" -test.cpu "$3" |
    awk '/^Benchmark/ { for (i = 3; i < NF; i++) if ($(i+1) ~ /\// && $(i+1) !~ /\/op$/) print "ratio", $(i+1), $i }'
}

py_bench() {
  OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} OPENBLAS_NUM_THREADS=$1 OMP_NUM_THREADS=$1 "$py" "$root/scripts/pytorch_wave.py" --threads "$1" --iters "$iters" "${@:2}" | grep -v '^#'
}

results=$work/results
: >"$results"
for rep in $(seq 1 "$reps"); do
  for t in $threads; do
    echo "repetition $rep of $reps, $t thread(s)" >&2
    go_bench "$work/model.test" '^BenchmarkWave(Residual|VJP|Probe|GEMMFloor|ElementFloor)$' "$t" | sed "s/^/$t go /" >>"$results"
    go_bench "$work/coordinator.test" '^BenchmarkWaveStep(Plain|Alg3)$' "$t" | sed "s/^/$t go /" >>"$results"
    ratio_bench "$work/model.test" '^BenchmarkWaveProbeRatio$' "$t" | sed "s/^/$t go /" >>"$results"
    ratio_bench "$work/coordinator.test" '^BenchmarkWaveStepRatio$' "$t" | sed "s/^/$t go /" >>"$results"
    py_bench "$t" residual vjp probe step_plain step_alg3 gemm6 | sed "s/^/$t torch /" >>"$results"
  done
done
if [ "${NTK:-1}" = 1 ]; then
  echo "exact NTK, 1 thread" >&2
  iters=1 go_bench "$work/model.test" '^BenchmarkWaveNTK$' 1 | sed "s/^/1 go /" >>"$results"
  py_bench 1 ntk | sed "s/^/1 torch /" >>"$results"
fi
echo "PyTorch's matrix-product flops per call (torch.profiler)" >&2
py_bench 1 --flops residual vjp probe step_plain step_alg3 gemm6 | sed "s/^/flops torch /" >>"$results"

[ -n "${RAW:-}" ] && cp "$results" "$RAW"
"$py" - "$results" "$reps" "$blas" <<'EOF'
import statistics, sys
path, reps, blas = sys.argv[1], sys.argv[2], sys.argv[3]
wall, cpu, flops, ratios = {}, {}, {}, {}
for line in open(path):
    f = line.split()
    if f[0] == "flops":
        flops[("torch", f[2])] = float(f[3])
        continue
    t, side, work = f[0], f[1], f[2]
    if work == "ratio":
        ratios.setdefault((t, f[3]), []).append(float(f[4]))
        continue
    wall.setdefault((t, side, work), []).append(float(f[3]))
    if len(f) > 4 and f[4] != "-":
        cpu.setdefault((t, side, work), []).append(float(f[4]))
    if len(f) > 5 and f[5] != "-":
        flops[("go", work)] = float(f[5]) * 1e6
works = ["residual", "vjp", "probe", "step_plain", "step_alg3", "ntk", "gemm6", "elem_floor"]
label = {"residual": "R(θ)", "vjp": "Jᵀv", "probe": "probe (Jᵀg, then R(θ+Δt·Jᵀg))",
         "step_plain": "plain step", "step_alg3": "Algorithm 3 step",
         "ntk": "exact K (900×900)", "gemm6": "six GEMMs (the probe's floor)",
         "elem_floor": "element-wise floor (ntkbus only)"}
threads = sorted({k[0] for k in wall})


def med(d, t, s, w):
    v = d.get((t, s, w))
    return statistics.median(v) if v else None


cell = lambda v, fmt="{:.3f}": fmt.format(v) if v is not None else "–"
ratio = lambda a, b: f"{a / b:.2f}" if a and b else "–"
print(f"\nntkbus ({blas}) against PyTorch (OpenBLAS), medians of {reps} interleaved repetitions, seconds per call")
print("| threads | work | ntkbus | PyTorch | ntkbus/PyTorch | CPU: ntkbus | CPU: PyTorch | CPU ratio | GFLOP ntkbus | GFLOP PyTorch |")
print("|---|---|---|---|---|---|---|---|---|---|")
for t in threads:
    for w in works:
        g, p = med(wall, t, "go", w), med(wall, t, "torch", w)
        if g is None and p is None:
            continue
        gc, pc = (med(cpu, t, "go", w), med(cpu, t, "torch", w)) if t == "1" else (None, None)
        fg, fp = flops.get(("go", w)), flops.get(("torch", w))
        print(f"| {t} | {label[w]} | {cell(g)} | {cell(p)} | {ratio(g, p)} | {cell(gc)} | {cell(pc)} | {ratio(gc, pc)} | "
              f"{cell(fg and fg / 1e9, '{:.2f}')} | {cell(fp and fp / 1e9, '{:.2f}')} |")
print()
for t in threads:
    for name, d in (("wall", wall), ("CPU", cpu)):
        if name == "CPU" and t != "1":
            continue
        gp, gf, pp, pf = med(d, t, "go", "probe"), med(d, t, "go", "gemm6"), med(d, t, "torch", "probe"), med(d, t, "torch", "gemm6")
        sp, sa = med(d, t, "go", "step_plain"), med(d, t, "go", "step_alg3")
        ge = med(d, t, "go", "elem_floor")
        both = gf + ge if gf and ge else None
        print(f"{t} thread(s), {name} time: ntkbus probe / six-GEMM floor {ratio(gp, gf)} "
              f"(element-wise floor / six-GEMM floor {ratio(ge, gf)}, probe / both floors {ratio(gp, both)}); "
              f"PyTorch probe / its six GEMMs {ratio(pp, pf)}; ntkbus Algorithm 3 step / plain step {ratio(sa, sp)}")
print()
print("Timed call by call in turn (BenchmarkWaveProbeRatio, BenchmarkWaveStepRatio), medians of the repetitions:")
for t in threads:
    got = [f"{name} {statistics.median(v):.2f}" for (tt, name), v in sorted(ratios.items()) if tt == t]
    if got:
        print(f"{t} thread(s): " + ", ".join(got))
EOF
