#!/usr/bin/env bash
# Install matrix-js-sdk for the interop tests when node_modules is missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
	echo "jssdk: installing matrix-js-sdk (npm ci)"
	npm ci --no-audit --no-fund --loglevel=error
	touch node_modules
fi
