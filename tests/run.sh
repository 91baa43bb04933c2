#!/usr/bin/env bash
# The whole suite as two pytest processes side by side: the suites that start real processes
# (servers, Synapse, Chromium, node, workers sharing Redis pub/sub: they stay in one process so
# their Redis channels never meet) and the in-process rest. Most of the first group's time is
# spent waiting on those processes, so the two overlap well even on two cores.
# Exit status: non-zero if either group failed. Extra arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
processes=(tests/e2e tests/federation tests/web tests/plugins tests/api/test_federation_sender.py)
ignore=()
for p in "${processes[@]}"; do ignore+=(--ignore="$p"); done

log=$(mktemp)
"$PY" -m pytest -q -p no:cacheprovider "${processes[@]}" "$@" >"$log" 2>&1 &
first=$!
"$PY" -m pytest -q -p no:cacheprovider tests "${ignore[@]}" "$@"
second=$?
wait "$first"
first_status=$?
echo
echo "==== the suites that start real processes (${processes[*]}) ===="
cat "$log"
rm -f "$log"
echo "==== in-process suites: exit $second; real-process suites: exit $first_status ===="
[ "$first_status" -eq 0 ] && [ "$second" -eq 0 ]
