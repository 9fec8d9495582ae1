#!/usr/bin/env bash
# Draws the cluster's passwords (128 random bits each) and writes them where
# docker compose reads them (.env at the repository root) and where
# kustomize reads them (deploy/secrets.env). git ignores both files. A file
# that exists is kept; --force draws new passwords.
#
#   deploy/secrets.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."

force=false
[ "${1:-}" = "--force" ] && force=true
draw() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

if $force || [ ! -e .env ] || [ ! -e deploy/secrets.env ]; then
  coordinator=$(draw) sampler=$(draw) route=$(draw)
  umask 077
  if $force || [ ! -e .env ]; then
    printf 'NTKBUS_COORDINATOR_PASSWORD=%s\nNTKBUS_SAMPLER_PASSWORD=%s\nNTKBUS_ROUTE_PASSWORD=%s\n' "$coordinator" "$sampler" "$route" >.env
    echo "wrote .env (docker compose)"
  fi
  if $force || [ ! -e deploy/secrets.env ]; then
    printf 'coordinator-password=%s\nsampler-password=%s\nroute-password=%s\n' "$coordinator" "$sampler" "$route" >deploy/secrets.env
    echo "wrote deploy/secrets.env (kubectl apply -k deploy/)"
  fi
else
  echo ".env and deploy/secrets.env exist; --force draws new passwords"
fi
