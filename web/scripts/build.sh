#!/usr/bin/env bash
# Build the web client into web/out when it is missing or older than its sources.
# `npm ci` runs only when node_modules is missing or older than package-lock.json.
set -euo pipefail
cd "$(dirname "$0")/.."

need_major=20
if ! command -v node >/dev/null 2>&1; then
	echo "web: Node.js >= ${need_major} is needed to build the web client (https://nodejs.org, or 'apt-get install nodejs npm')." >&2
	exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt "$need_major" ]; then
	echo "web: Node.js >= ${need_major} is needed to build the web client; this is $(node --version)." >&2
	exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
	echo "web: installing dependencies (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules
fi

stamp=out/index.html
sources=$(find app src public next.config.ts postcss.config.mjs tsconfig.json package-lock.json \
	-newer "$stamp" -print -quit 2>/dev/null || true)
if [ ! -f "$stamp" ] || [ -n "$sources" ]; then
	echo "web: building the client (next build)"
	NEXT_TELEMETRY_DISABLED=1 npx --no-install next build
	touch "$stamp"
else
	echo "web: out/ is up to date"
fi
