#!/usr/bin/env bash
# The natural gradient on the paper's wave problem (5.2.2: u_tt − 4u_xx = 0,
# 3×500 tanh, p = 503,001), from the same seed, with fixed weights and the
# per-block mean of squares (the default with fixed weights):
#   ngd-resampled  the paper's points, 900 drawn afresh every step (each
#                  step solves on its own points: a subsampled natural
#                  gradient), the exact K, ngd's defaults but for μ's
#                  start, 0.1 (docs/natural-gradient.md)
#   ngd-fixed      2250 points drawn once (750, 750, 250, 250, 250: the
#                  paper's proportions), the same defaults
#   adam           Adam, η = 10⁻³ decayed ×0.9 every 1000 steps
#   sngd           the Nyström K̂ of 32 probe columns per step, computed by
#                  16 sampler replicas in another process over an embedded
#                  NATS server: the bus at work (debug log: seconds on columns)
# Every ngd step's debug log line has the seconds of its parts (the exact
# K, the solve with its passes, the line search): <out>/<run>.log.
#
#   scripts/ngd-wave.sh [out=runs/ngd-wave] [steps=2000] [sngd steps=10]
#
# Figure: <out>/wave.png, the relative L² error against step and
# wall-clock time; every run's own figures in its folder. Hours on 2
# cores: an ngd step takes 1.5–2 s with OpenBLAS on 900 points, about
# 6 s on 2250.
source "$(dirname "$0")/lib.sh"
out=${1:-runs/ngd-wave}
steps=${2:-2000}
sngd_steps=${3:-10}
build
sampler_tags=()
if ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then sampler_tags=(-tags openblas); fi
(cd "$root" && go build "${sampler_tags[@]}" -o "$bin/sampler" ./cmd/sampler)
mkdir -p "$out"
w=(--problem wave --seed 1 --log-level debug --error-every 10 --weights fixed --figures=false)
"$coordinator" train "${w[@]}" --optimizer ngd --damping-start 0.1 --steps "$steps" --out "$out/ngd-resampled" 2> "$out/ngd-resampled.log"
"$coordinator" train "${w[@]}" --optimizer ngd --damping-start 0.1 --steps "$steps" --resample false --points 750,750,250,250,250 \
  --out "$out/ngd-fixed" 2> "$out/ngd-fixed.log"
"$coordinator" train "${w[@]}" --log-level warn --optimizer adam --steps "$steps" --local --out "$out/adam"

# sngd over NATS: the coordinator's embedded server, 16 samplers in another
# process, joining with the sampler password the coordinator drew for the
# run (it prints the join command, with the address it took, on its
# standard output).
"$coordinator" train --problem wave --seed 1 --error-every 10 --weights fixed --optimizer sngd --probes 32 \
  --damping 0.1 --steps "$sngd_steps" --listen "127.0.0.1:0" --samplers 0 --log-level debug \
  --out "$out/sngd" > "$out/sngd.out" 2> "$out/sngd.log" &
coord=$!
trap 'kill $coord 2>/dev/null || true; rm -rf "$bin"' EXIT
join=""
for _ in $(seq 100); do
  join=$(grep -o 'NTKBUS_NATS_USER=[^ ]* NTKBUS_NATS_PASSWORD=[^ ]* sampler --nats [^ ]*' "$out/sngd.out" 2>/dev/null || true)
  [ -n "$join" ] && break
  kill -0 "$coord" 2>/dev/null || { cat "$out/sngd.log" >&2; echo "ngd-wave: the sngd coordinator stopped" >&2; exit 1; }
  sleep 0.2
done
[ -n "$join" ] || { echo "ngd-wave: the coordinator printed no join command" >&2; exit 1; }
read -r user pass _ _ url <<<"$join"
env "$user" "$pass" "$bin/sampler" --nats "$url" --replicas 16 --log-level warn &
samplers=$!
trap 'kill $samplers $coord 2>/dev/null || true; rm -rf "$bin"' EXIT
wait "$coord"
kill "$samplers" 2>/dev/null || true
"$coordinator" plot --compare "$out/adam,$out/ngd-resampled,$out/ngd-fixed,$out/sngd" \
  --labels "Adam,ngd (900 points resampled),ngd (2250 fixed points),sngd (32 columns)" --out "$out/wave.png"
