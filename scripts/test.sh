#!/usr/bin/env bash
# Install everything the tests need (apt packages included) and run lint, types and the suite.
set -euo pipefail
source "$(dirname "$0")/setup.sh" test
.venv/bin/ruff check companion tests
.venv/bin/mypy
# One pytest worker per core (at most 4), whole files per worker so module fixtures load once.
workers=$(nproc)
[ "$workers" -gt 4 ] && workers=4
dist=()
if [ "$workers" -gt 1 ]; then
  dist=(-n "$workers" --dist loadfile)
  # each worker's thread pools (numba, lavapipe, BLAS) get its share of the cores: pools sized
  # to the whole machine in every worker fight (a reference test ran 5x slower beside another)
  per=$(( $(nproc) / workers ))
  export NUMBA_NUM_THREADS="${NUMBA_NUM_THREADS:-$per}" LP_NUM_THREADS="${LP_NUM_THREADS:-$per}" \
    OMP_NUM_THREADS="${OMP_NUM_THREADS:-$per}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$per}"
fi
set +e
.venv/bin/python -m pytest -ra --durations=30 "${dist[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit $rc
