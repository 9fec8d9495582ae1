#!/usr/bin/env bash
# The shipped example problems (problems/*.toml), each trained with Adam
# and with the natural gradient (ngd, the exact K) from the same seed and
# points, in this process (--local), one run at a time; then a table of the
# relative L² error reached (against the exact solution on the error grid,
# or at the reference data's points), the steps, the wall-clock time and
# the build, beside the best figure of PINNacle's Table 3 for the PDEs it
# has and the best published figure we could check.
#
#   scripts/problems-results.sh [out=runs/problems] [adam steps=20000] [ngd steps=2000] [problems...]
#
# Adam: η = 10⁻³ decayed 0.9 every 1000 steps, fixed weights, mean loss.
# ngd: automatic damping and line search (the defaults), stopping by the
# stall rule (no 1% decrease of the loss in 100 steps) or --steps.
# Writes scripts/results/problems-results.md (the table, committed) and
# <out>/<problem>-{adam,ngd}/ (every run's folder, with its figures).
# Hours on 2 cores: run it with nice, alone.
source "$(dirname "$0")/lib.sh"
out=${1:-runs/problems}
adam_steps=${2:-20000}
ngd_steps=${3:-2000}
shift $(( $# < 3 ? $# : 3 ))
problems=("$@")
if [ ${#problems[@]} -eq 0 ]; then
  problems=(burgers1d burgers1d:resampled allen_cahn1d helmholtz2d heat2d poisson_holes ns_kovasznay wave poisson2d)
fi
build
mkdir -p "$out"

# A problem is a file of problems/, and NAME:VARIANT the same file with
# other flags:
#   wave            the paper's wave problem (3×500, p = 503,001) is
#                   PINNacle's Wave1d-C; on two cores its exact K every
#                   step is hours per hundred steps, so the table trains it
#                   on a 2→64→64→64→1 network.
#   NAME:resampled  new points every step (--resample true).
flags() {
  case $1 in
    wave) echo --layers 2,64,64,64,1 ;;
    *:resampled) echo --resample true ;;
  esac
}

for p in "${problems[@]}"; do
  file="$root/problems/${p%%:*}.toml"
  read -r -a extra <<<"$(flags "$p")"
  common=(--problem "$file" --seed 1 --point-seed 1 --weights fixed --local --log-level warn "${extra[@]}")
  if [ ! -f "$out/$p-adam/summary.json" ]; then
    rm -rf "$out/$p-adam"
    "$coordinator" train "${common[@]}" --optimizer adam --lr 1e-3 --decay 0.9 --decay-every 1000 \
      --steps "$adam_steps" --error-every 200 --out "$out/$p-adam"
  fi
  if [ ! -f "$out/$p-ngd/summary.json" ]; then
    rm -rf "$out/$p-ngd"
    "$coordinator" train "${common[@]}" --optimizer ngd --steps "$ngd_steps" --error-every 10 --out "$out/$p-ngd"
  fi
done

# The table.
commit=$(cd "$root" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(cd "$root" && git status --porcelain --untracked-files=no 2>/dev/null | head -c1)
[ -n "$dirty" ] && commit="$commit (modified)"
blas=$(jq -r '.blas // "?"' "$out/${problems[0]}-ngd/summary.json")
table="$root/scripts/results/problems-results.md"
{
  echo "# Problem files: Adam against ngd"
  echo
  echo "Built at commit $commit, BLAS: $blas, $(nproc) cores, $(date -u +%Y-%m-%d). Produced by"
  echo "\`scripts/problems-results.sh $out $adam_steps $ngd_steps\`; every run's folder is under \`$out\`."
  echo
  echo "Relative L² error ‖u − u*‖/‖u*‖ (all outputs), at the error grid's points"
  echo "in the domain (exact solution) or at the reference data's points. Steps:"
  echo "those the run took (ngd stops when the loss stalls); time: wall clock."
  echo
  echo "| problem | network, points | Adam: rel. L² | steps | time | ngd: rel. L² | steps | time | PINNacle best | best published |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for p in "${problems[@]}"; do
    a="$out/$p-adam/summary.json"
    n="$out/$p-ngd/summary.json"
    layers=$(jq -r '"\(.model.layers | map(tostring) | join("-")), \(if .train.counts then (.train.counts | map(tostring) | join("+")) else "the file'"'"'s points" end)\(if .train.resample then " resampled" else "" end)"' "$out/$p-ngd/config.json")
    ea=$(jq -r '.error_l2 | if . == null then "—" else (. | tostring) end' "$a" | xargs printf '%.2e' 2>/dev/null || echo "—")
    en=$(jq -r '.error_l2 | if . == null then "—" else (. | tostring) end' "$n" | xargs printf '%.2e' 2>/dev/null || echo "—")
    sa=$(jq -r '.steps' "$a"); sn=$(jq -r '"\(.steps) (\(.stop_reason))"' "$n")
    ta=$(jq -r '.seconds' "$a" | xargs printf '%.0f s'); tn=$(jq -r '.seconds' "$n" | xargs printf '%.0f s')
    case ${p%%:*} in
      burgers1d)    lit="1.45e-2 (Burgers1d-C)"; best="6.7e-4 (Raissi et al. 2019)" ;;
      wave)         lit="9.79e-2 (Wave1d-C)";    best="—" ;;
      allen_cahn1d) lit="—";                     best="5.37e-5 (Wang et al. 2023, jaxpi)" ;;
      *)            lit="—";                     best="—" ;;
    esac
    echo "| $p | $layers | $ea | $sa | $ta | $en | $sn | $tn | $lit | $best |"
  done
  echo
  echo "PINNacle: Hao et al., \"PINNacle: A Comprehensive Benchmark of Physics-Informed"
  echo "Neural Networks for Solving PDEs\", NeurIPS 2024 Datasets and Benchmarks, Table 3"
  echo "(best method's mean L2RE over 20,000 Adam epochs; Burgers1d-C is our burgers1d,"
  echo "Wave1d-C our wave), as a public summary of the paper quotes it: the table itself"
  echo "could not be read here. The other shipped problems are not in PINNacle. Best published:"
  echo "Raissi, Perdikaris & Karniadakis, J. Comput. Phys. 378 (2019), Burgers with 10,000"
  echo "collocation points and L-BFGS; Wang, Sankaran, Wang & Perdikaris, \"An expert's guide"
  echo "to training PINNs\" (2023), jaxpi's README table, Allen–Cahn. A dash: no figure we"
  echo "could check for that exact problem."
} > "$table"
echo "wrote $table"
cat "$table"
