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
[ "$workers" -gt 1 ] && dist=(-n "$workers" --dist loadfile)
set +e
.venv/bin/python -m pytest -ra --durations=30 "${dist[@]}" "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit $rc
