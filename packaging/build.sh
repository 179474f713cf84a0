#!/usr/bin/env bash
# Build Companion for Linux: the PyInstaller bundle (onedir), a .deb, and an AppDir (an
# AppImage too where `appimagetool` is on PATH: neither Debian nor PyPI ships it or the
# AppImage runtime it embeds, see README).
#   usage: bash packaging/build.sh            (from a fresh clone, as root or with sudo)
#          bash packaging/build.sh --no-setup (use .venv as it is: no apt, no pip)
#          bash packaging/build.sh --no-setup --reuse (keep packaging/dist/companion: packages only)
#          --no-smoke: skip the smoke test (tests/test_packaging.py runs it on the installed .deb)
#          --no-cache: run PyInstaller even when the bundle cache holds this build
# Output: packaging/dist/companion/ (the app), packaging/dist/companion_<ver>_<arch>.deb,
#         packaging/dist/Companion.AppDir/ (and Companion-<ver>-<arch>.AppImage if possible).
# The PyInstaller output is cached in $COMPANION_BUNDLE_CACHE (default ~/.cache/companion/bundle)
# under bundle.py's build_key(): the packaging files, every installed distribution, Python and
# every module the app imports. The app's own layer (its code, ui/, shaders/, data) is copied
# in fresh on every build (bundle.py refresh), so a code change needs no PyInstaller run.
# Lines "time: STEP SECONDS" report each step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP=1; REUSE=0; SMOKE=1; CACHE_OK=1
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    --reuse) REUSE=1 ;;
    --no-smoke) SMOKE=0 ;;
    --no-cache) CACHE_OK=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ "$SETUP" = 1 ]; then
  source scripts/setup.sh run
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  for p in dpkg-dev fakeroot; do  # dpkg-deb, dpkg --print-architecture
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null
  done
  .venv/bin/python -m pip install -q -e ".[desktop,packaging]"
fi
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/companion-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

VERSION="$(.venv/bin/python -c 'import companion; print(companion.__version__)')"
ARCH="$(dpkg --print-architecture)"
BUILD=packaging/build
DIST=packaging/dist
APP="$DIST/companion"
t0=$(date +%s)
step() { echo "time: $1 $(( $(date +%s) - $2 ))"; }
CACHE="${COMPANION_BUNDLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/companion/bundle}"
KEY="$(.venv/bin/python packaging/bundle.py key)"
if [ "$REUSE" = 1 ] && [ -x "$APP/companion" ]; then
  rm -rf "$BUILD/deb" "$DIST/Companion.AppDir" "$DIST"/*.deb "$DIST"/*.AppImage
  echo "== reusing $APP"
else
  rm -rf "$BUILD/deb" "$BUILD/pyinstaller" "$DIST"
  mkdir -p "$BUILD" "$DIST"
  bash scripts/build_vrm.sh --require  # ui/vrm/three-vrm.js ships inside ui/
  [ -d "$BUILD/icons" ] || .venv/bin/python -m companion.shell.icon "$BUILD/icons" >/dev/null
  if [ "$CACHE_OK" = 1 ] && [ -x "$CACHE/$KEY/companion/companion" ]; then
    echo "== bundle from the cache ($CACHE/$KEY)"
    # hard links where the cache is on the same file system: the build never writes into a
    # cached file (bundle.py refresh unlinks the app layer and copies a new one)
    cp -al "$CACHE/$KEY/companion" "$APP" 2>/dev/null || { rm -rf "$APP"; cp -a "$CACHE/$KEY/companion" "$APP"; }
    step cache "$t0"
  else
    echo "== PyInstaller (onedir; a few minutes)"
    .venv/bin/pyinstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$BUILD/pyinstaller" packaging/companion.spec
    # Debian's libpython carries its debug info (23 MB, 6 MB without); llvmlite's LLVM (numba,
    # the CPU engine's kernels) its symbol tables (179 MB, 160 MB without)
    if command -v strip >/dev/null 2>&1; then
      for lib in "$APP"/_internal/libpython3*.so*; do [ -f "$lib" ] && strip --strip-debug "$lib"; done
      for lib in "$APP"/_internal/llvmlite/binding/libllvmlite*.so; do [ -f "$lib" ] && strip --strip-unneeded "$lib"; done
    fi
    step pyinstaller "$t0"
    if [ "$CACHE_OK" = 1 ]; then  # keep this build only: each is ~700 MB
      rm -rf "$CACHE" && mkdir -p "$CACHE/$KEY.tmp"
      cp -al "$APP" "$CACHE/$KEY.tmp/companion" 2>/dev/null || cp -a "$APP" "$CACHE/$KEY.tmp/companion"
      mv "$CACHE/$KEY.tmp" "$CACHE/$KEY"
    fi
  fi
  t1=$(date +%s)
  .venv/bin/python packaging/bundle.py refresh "$APP"
  step app-layer "$t1"
  echo "bundle: $(du -sh "$APP" | cut -f1) ($(du -sk "$APP" | cut -f1) KiB)"
fi
[ -d "$BUILD/icons" ] || .venv/bin/python -m companion.shell.icon "$BUILD/icons" >/dev/null

if [ "$SMOKE" = 1 ]; then
  echo "== smoke test of the frozen app"
  t1=$(date +%s)
  SMOKE_HOME="$(mktemp -d)"
  export COMPANION_HOME="$SMOKE_HOME"
  "$APP/companion" --version
  OFFLINE=()
  if [ "$(id -u)" -eq 0 ] && unshare -n true 2>/dev/null; then
    OFFLINE=(unshare -n)  # no network interface at all, not even loopback
  else
    echo "note: not root (or no user namespaces): the smoke test runs with the network present"
  fi
  # one golden parity prompt on the reference and native engines (wgpu-native and the shaders
  # from the bundle), then one chat turn: everything the app needs is inside it
  "${OFFLINE[@]}" "$APP/companion" doctor --engines reference,native --no-page > "$BUILD/doctor.txt" \
    || { cat "$BUILD/doctor.txt"; exit 1; }
  grep -E "^  (companion|frozen):|status:|^OK" "$BUILD/doctor.txt"
  "${OFFLINE[@]}" "$APP/companion" chat --engine reference --no-memory --max-tokens 16 --seed 1 "Hello!" </dev/null
  [ ${#OFFLINE[@]} -gt 0 ] && echo "no-network run: ok"
  unset COMPANION_HOME
  rm -rf "$SMOKE_HOME"
  step smoke "$t1"
fi

echo "== .deb"
t1=$(date +%s)
DEB="$BUILD/deb"
mkdir -p "$DEB/DEBIAN" "$DEB/opt" "$DEB/usr/bin" "$DEB/usr/share/applications" "$DEB/usr/share/icons"
cp -al "$APP" "$DEB/opt/companion" 2>/dev/null || cp -a "$APP" "$DEB/opt/companion"
ln -s /opt/companion/companion "$DEB/usr/bin/companion"
cp packaging/linux/companion.desktop "$DEB/usr/share/applications/companion.desktop"
cp -a "$BUILD/icons/hicolor" "$DEB/usr/share/icons/hicolor"
SIZE_KB="$(du -sk --exclude=DEBIAN "$DEB" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE_KB@/$SIZE_KB/" packaging/linux/control.in > "$DEB/DEBIAN/control"
install -m 755 packaging/linux/postinst packaging/linux/postrm "$DEB/DEBIAN/"
DEBFILE="$DIST/companion_${VERSION}_${ARCH}.deb"
# zstd: 18 s for the bundle on 2 busy cores against 240 s for gzip -9, and 2% smaller; dpkg
# reads it from Debian 12 and Ubuntu 21.10 on (COMPANION_DEB_COMPRESSION=gzip for older ones)
COMP="${COMPANION_DEB_COMPRESSION:-zstd}"
dpkg-deb --root-owner-group "-Z$COMP" --build "$DEB" "$DEBFILE" >/dev/null
echo "deb: $DEBFILE ($(du -h "$DEBFILE" | cut -f1), installed $SIZE_KB KiB)"
step deb "$t1"

echo "== AppDir"
t1=$(date +%s)
APPDIR="$DIST/Companion.AppDir"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" "$APPDIR/usr/share/icons"
cp -al "$APP" "$APPDIR/usr/lib/companion" 2>/dev/null || cp -a "$APP" "$APPDIR/usr/lib/companion"
install -m 755 packaging/linux/AppRun "$APPDIR/AppRun"
cp packaging/linux/companion.desktop "$APPDIR/companion.desktop"
cp packaging/linux/companion.desktop "$APPDIR/usr/share/applications/"
cp -a "$BUILD/icons/hicolor" "$APPDIR/usr/share/icons/hicolor"
cp "$BUILD/icons/companion.png" "$APPDIR/companion.png"
ln -sf companion.png "$APPDIR/.DirIcon"
TOOL="${APPIMAGETOOL:-$(command -v appimagetool || true)}"
if [ -n "$TOOL" ]; then
  APPIMAGE="$DIST/Companion-${VERSION}-$(uname -m).AppImage"
  ARCH="$(uname -m)" "$TOOL" --no-appstream "$APPDIR" "$APPIMAGE"
  echo "AppImage: $APPIMAGE ($(du -h "$APPIMAGE" | cut -f1))"
else
  echo "note: no appimagetool (neither it nor an AppImage runtime is packaged by Debian or PyPI): the AppDir is ready;"
  echo "      APPIMAGETOOL=/path/to/appimagetool bash packaging/build.sh, or CI's workflow, makes the AppImage"
fi
step appdir "$t1"
echo "done in $(( $(date +%s) - t0 )) s"
