#!/usr/bin/env bash
# Draws the cluster's credentials: one nkey per identity (the coordinator
# and sampler-1 … sampler-N; a sampler can publish only under its own
# identity) and the route password, into deploy/secrets/ (mode 0600; git
# ignores it), with the files made from them: the servers' users
# (users.conf), docker compose's samplers (compose.yml, named in .env's
# COMPOSE_FILE) and the Kubernetes secrets and samplers (k8s.yaml). Keys
# that exist are kept, so adding samplers keeps the others'; --force draws
# them all again. It needs Go (the keys are ed25519 nkeys).
#
#   deploy/secrets.sh [--samplers N] [--force]     # N defaults to 16
set -euo pipefail
cd "$(dirname "$0")/.."

samplers=16 force=()
while [ $# -gt 0 ]; do
  case $1 in
    --force) force=(--force) ;;
    --samplers) samplers=${2:?--samplers needs a number}; shift ;;
    --samplers=*) samplers=${1#--samplers=} ;;
    *) echo "deploy/secrets.sh: unknown argument $1 (want --samplers N, --force)" >&2; exit 2 ;;
  esac
  shift
done
command -v go >/dev/null || { echo "deploy/secrets.sh needs Go to draw the nkeys (https://go.dev/dl/)" >&2; exit 1; }
umask 077
go run ./deploy/credentials --samplers "$samplers" --out deploy/secrets --root . "${force[@]}"
