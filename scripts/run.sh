#!/usr/bin/env bash
# Install everything Companion needs and start it (desktop window where one can open,
# terminal chat otherwise). Extra arguments go to `companion`.
set -euo pipefail
source "$(dirname "$0")/setup.sh" run
exec .venv/bin/companion "$@"
