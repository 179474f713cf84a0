#!/usr/bin/env bash
# Build Companion for Linux: the PyInstaller bundle (onedir), a .deb, and an AppDir (an
# AppImage too where `appimagetool` is on PATH: it is in neither Debian nor PyPI).
#   usage: bash packaging/build.sh            (from a fresh clone, as root or with sudo)
#          bash packaging/build.sh --no-setup (use .venv as it is: no apt, no pip)
#          bash packaging/build.sh --no-setup --reuse (keep packaging/dist/companion: packages only)
# Output: packaging/dist/companion/ (the app), packaging/dist/companion_<ver>_<arch>.deb,
#         packaging/dist/Companion.AppDir/ (and Companion-<ver>-<arch>.AppImage if possible).
# Then it smoke-tests the frozen app: version, doctor (reference engine), and a parity prompt
# and a chat turn with no network at all (unshare -n) where that is allowed (root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETUP=1; REUSE=0
for arg in "$@"; do
  case "$arg" in
    --no-setup) SETUP=0 ;;
    --reuse) REUSE=1 ;;
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
if [ "$REUSE" = 1 ] && [ -x "$APP/companion" ]; then
  rm -rf "$BUILD/deb" "$DIST/Companion.AppDir" "$DIST"/*.deb "$DIST"/*.AppImage
  echo "== reusing $APP"
else
  rm -rf "$BUILD" "$DIST"
  mkdir -p "$BUILD" "$DIST"
  bash scripts/build_vrm.sh --require  # ui/vrm/three-vrm.js ships inside ui/
  echo "== PyInstaller (onedir; a few minutes)"
  .venv/bin/python -m companion.shell.icon "$BUILD/icons" >/dev/null
  .venv/bin/pyinstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath "$BUILD/pyinstaller" packaging/companion.spec
  echo "bundle: $(du -sh "$APP" | cut -f1) in $(( $(date +%s) - t0 )) s"
fi
[ -d "$BUILD/icons" ] || .venv/bin/python -m companion.shell.icon "$BUILD/icons" >/dev/null

echo "== smoke test of the frozen app"
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

echo "== .deb"
DEB="$BUILD/deb"
mkdir -p "$DEB/DEBIAN" "$DEB/opt" "$DEB/usr/bin" "$DEB/usr/share/applications" "$DEB/usr/share/icons"
cp -a "$APP" "$DEB/opt/companion"
ln -s /opt/companion/companion "$DEB/usr/bin/companion"
cp packaging/linux/companion.desktop "$DEB/usr/share/applications/companion.desktop"
cp -a "$BUILD/icons/hicolor" "$DEB/usr/share/icons/hicolor"
SIZE_KB="$(du -sk --exclude=DEBIAN "$DEB" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE_KB@/$SIZE_KB/" packaging/linux/control.in > "$DEB/DEBIAN/control"
install -m 755 packaging/linux/postinst packaging/linux/postrm "$DEB/DEBIAN/"
DEBFILE="$DIST/companion_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zgzip --build "$DEB" "$DEBFILE" >/dev/null
echo "deb: $DEBFILE ($(du -h "$DEBFILE" | cut -f1))"

echo "== AppDir"
APPDIR="$DIST/Companion.AppDir"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" "$APPDIR/usr/share/icons"
cp -a "$APP" "$APPDIR/usr/lib/companion"
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
  echo "note: no appimagetool (not packaged by Debian or PyPI): the AppDir is ready;"
  echo "      APPIMAGETOOL=/path/to/appimagetool bash packaging/build.sh, or CI's workflow, makes the AppImage"
fi
echo "done in $(( $(date +%s) - t0 )) s"
