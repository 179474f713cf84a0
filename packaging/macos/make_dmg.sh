#!/usr/bin/env bash
# macOS: the PyInstaller .app (packaging/dist/Companion.app) into a compressed DMG with an
# Applications link. Runs on macOS only (hdiutil); .github/workflows/package.yml calls it.
#   usage: bash packaging/macos/make_dmg.sh [VERSION]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
VERSION="${1:-0.1.0}"
APP=packaging/dist/Companion.app
[ -d "$APP" ] || { echo "no $APP: run pyinstaller packaging/companion.spec first" >&2; exit 1; }
STAGE="$(mktemp -d)"
cp -R "$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
# ad-hoc signature: Gatekeeper still asks on first open (no Developer ID in CI)
codesign --force --deep --sign - "$STAGE/Companion.app"
hdiutil create -volname "Companion" -srcfolder "$STAGE" -ov -format UDZO "packaging/dist/Companion-$VERSION.dmg"
rm -rf "$STAGE"
echo "packaging/dist/Companion-$VERSION.dmg"
