#!/usr/bin/env bash
# Tests under conditions the calendar and the machine will bring (`make test` runs its
# CLOCK_TESTS with `future`; `make test-loaded`); extra arguments go to pytest (default: all).
#   scripts/test-under.sh future [ARGS]   the clock read one year ahead (libfaketime; every child
#                                         process inherits it, so servers and workers agree)
#   scripts/test-under.sh loaded [ARGS]   one core kept busy by stress-ng for the whole run
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:?usage: scripts/test-under.sh future|loaded [pytest args]}"
shift
pytest=(.venv/bin/pytest -q -p no:cacheprovider "$@")
case "$mode" in
  future)
    # A fixed offset: every clock moves at its real rate, so durations keep their length.
    # (FAKETIME_DONT_FAKE_MONOTONIC breaks Python's time.sleep, which sleeps to an absolute
    # monotonic deadline: EINVAL.)
    exec faketime -f "${KYSO_CLOCK_SHIFT:-+365d}" "${pytest[@]}"
    ;;
  loaded)
    stress-ng --cpu 1 --cpu-method matrixprod --timeout 3h --quiet &
    load=$!
    trap 'kill "$load" 2>/dev/null; wait "$load" 2>/dev/null || true' EXIT
    "${pytest[@]}"
    ;;
  *)
    echo "scripts/test-under.sh: unknown mode $mode (future or loaded)" >&2
    exit 2
    ;;
esac
