#!/usr/bin/env bash
# Natural gradient against Adam on the paper's wave problem (5.2.2:
# u_tt − 4u_xx = 0, 3×500 tanh, p = 503,001, 900 points resampled every
# step), from the same seed and points:
#   adam      Adam, η = 10⁻³ decayed 0.9 every 1000 steps, plain loss
#   adam-ntk  the same with estimated NTK weights (Algorithm 3, α = 10⁻³)
#   ngd       the exact K (structured, n = 900 < p), damping μ = 0.1 (on
#             resampled points automatic damping drove μ down to 10⁻⁴ and
#             η to 2⁻⁹: docs/natural-gradient.md), line search, each step on its own points
#   sngd      the Nyström K̂ of 32 probe columns per step, computed by 16
#             sampler replicas in another process over an embedded NATS
#             server: the bus at work (debug log: seconds on columns)
#
#   scripts/ngd-wave.sh [out=runs/ngd-wave] [steps=2000] [sngd steps=10]
#
# Figure: <out>/wave.png, the maximum error against step and wall-clock
# time; every run's own figures in its folder. Hours on 2 cores: ngd takes
# about 3 s per step with OpenBLAS, sngd about 32 probes' worth.
source "$(dirname "$0")/lib.sh"
out=${1:-runs/ngd-wave}
steps=${2:-2000}
sngd_steps=${3:-10}
build
sampler_tags=()
if ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then sampler_tags=(-tags openblas); fi
(cd "$root" && go build "${sampler_tags[@]}" -o "$bin/sampler" ./cmd/sampler)
mkdir -p "$out"
w=(--problem wave --seed 1 --log-level warn --error-every 20)
"$coordinator" train "${w[@]}" --weights fixed --optimizer adam --steps "$steps" --local --out "$out/adam"
"$coordinator" train "${w[@]}" --weights estimate --alpha 1e-3 --optimizer adam --steps "$steps" --local --out "$out/adam-ntk"
"$coordinator" train "${w[@]}" --weights fixed --optimizer ngd --damping 0.1 --steps "$steps" --out "$out/ngd"

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
"$coordinator" plot --compare "$out/adam,$out/adam-ntk,$out/ngd,$out/sngd" \
  --labels "Adam,Adam + NTK weights (Alg. 3),ngd (exact K),sngd (32 columns)" --metric error_max --out "$out/wave.png"
