# Shared by the paper scripts: build the coordinator once, with OpenBLAS
# when it is installed (much faster GEMMs), and name the output folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
build() {
  local tags=()
  if ls /usr/lib/*/libopenblas.so >/dev/null 2>&1; then
    export CGO_LDFLAGS=-lopenblas
    tags=(-tags openblas)
  fi
  (cd "$root" && go build "${tags[@]}" -o "$bin/coordinator" ./cmd/coordinator)
  coordinator="$bin/coordinator"
}
