#!/bin/sh
# Issue (or renew) each node's certificate for its MagicDNS name with `tailscale cert`
# (Let's Encrypt through Tailscale; valid 90 days), then restart Parley to load it.
set -eu
: "${TAILNET:?set TAILNET to your tailnet DNS name, e.g. tail4a2b.ts.net}"
cd "$(dirname "$0")"
for org in acme globex; do
  docker compose -f compose.yml exec "ts-$org" tailscale cert \
    --cert-file /certs/fullchain.pem --key-file /certs/privkey.pem "$org-parley.$TAILNET"
done
docker compose -f compose.yml restart parley-acme parley-globex 2>/dev/null || true
