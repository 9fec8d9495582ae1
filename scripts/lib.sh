# Shared by the paper scripts: build the coordinator once, with OpenBLAS
# when it is installed (much faster GEMMs), and name the output folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# openblas_coretype names OpenBLAS's kernels when the caller has not:
# OpenBLAS 0.3.21 does not know CPUs newer than itself and falls back to
# its oldest ones ("Prescott", 4.4 times slower GEMMs than SkylakeX on the
# project's Xeon).
openblas_coretype() {
  [ -n "${OPENBLAS_CORETYPE:-}" ] && return
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  if [[ " $flags " == *" avx512f "* && " $flags " == *" avx512dq "* && " $flags " == *" avx512cd "* && " $flags " == *" avx512bw "* && " $flags " == *" avx512vl "* ]]; then
    export OPENBLAS_CORETYPE=SkylakeX
  elif [[ " $flags " == *" avx2 "* && " $flags " == *" fma "* ]]; then
    export OPENBLAS_CORETYPE=Haswell
  fi
}
build() {
  local tags=()
  if ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then
    export CGO_LDFLAGS=-lopenblas
    tags=(-tags openblas)
    openblas_coretype
  fi
  (cd "$root" && go build "${tags[@]}" -o "$bin/coordinator" ./cmd/coordinator)
  coordinator="$bin/coordinator"
}
