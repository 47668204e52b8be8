#!/usr/bin/env bash
# Run the in-process suite with the clock stopped at awkward instants (see
# tests/conftest.py, TRACKER_TEST_CLOCK). A test that passes only on the day it
# was written fails here. Two instants run at a time (this machine has 2 cores).
# Tests marked slow start processes of their own (gunicorn, localstripe), which
# keep the real clock, and the browser tests drive a real Chromium: both are
# left to the main run, and so are the files below that read no clock at all
# (texts, configuration, schema, packaging, docs): they would only cost time.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST="${PYTEST:-.venv/bin/pytest}"
INSTANTS=(
  "2027-01-31T23:59:59+00:00"  # the last second of a month (UTC; already February in Paris)
  "2028-02-29T23:59:59+00:00"  # the last second of 29 February
  "2027-03-28T00:59:59+00:00"  # a second before Europe/Paris springs forward
  "2026-12-31T09:59:59+00:00"  # a second before New Year in UTC+14 (Pacific/Kiritimati)
)
CLOCK_FREE=(
  tests/browser tests/ops tests/cluster
  tests/test_i18n.py tests/test_amount_pattern.py tests/test_fuzz_public_forms.py
  tests/test_docs.py tests/test_config.py tests/test_schema.py tests/test_donor_key_migration.py
  tests/test_bench_harness.py tests/test_bench_floor.py tests/test_bench_run_all.py
  tests/unit/test_ci_skips.py tests/unit/test_packaging.py
)
ignores=()
for path in "${CLOCK_FREE[@]}"; do ignores+=("--ignore=$path"); done
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run_one() {
  local at="$1" log="$2"
  TRACKER_TEST_CLOCK="$at" "$PYTEST" -q -m "not slow" "${ignores[@]}" \
    -p no:cacheprovider >"$log" 2>&1
}

status=0
for ((i = 0; i < ${#INSTANTS[@]}; i += 2)); do
  pids=()
  for at in "${INSTANTS[@]:i:2}"; do
    run_one "$at" "$logs/$at.log" &
    pids+=("$!")
  done
  for pid in "${pids[@]}"; do wait "$pid" || status=1; done
done
for at in "${INSTANTS[@]}"; do
  echo "clock at $at: $(tail -n 1 "$logs/$at.log")"
done
if [ "$status" -ne 0 ]; then
  for at in "${INSTANTS[@]}"; do
    if grep -qE '^(FAILED|ERROR)' "$logs/$at.log"; then
      echo "---- with the clock at $at:"
      grep -E '^(FAILED|ERROR)' "$logs/$at.log"
    elif ! tail -n 1 "$logs/$at.log" | grep -q ' passed'; then
      echo "---- with the clock at $at:"
      tail -n 40 "$logs/$at.log"
    fi
  done
fi
exit "$status"
