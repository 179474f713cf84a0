"""The app icon, drawn with Pillow: the avatar's orb (violet to pink, two eyes, a smile) on a
transparent background. One drawing serves the tray, the window, the .deb and AppImage
(PNG), Windows (.ico) and macOS (.icns); `python -m companion.shell.icon OUT_DIR` writes them.
"""

from __future__ import annotations

import argparse
import io
import math
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZES = (16, 24, 32, 48, 64, 128, 256, 512)  # hicolor sizes; .ico takes up to 256
_TOP = (124, 92, 255)  # the page's accent violet (ui/style.css)
_BOTTOM = (236, 72, 153)  # its pink


def _lerp(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t), round(a[2] + (b[2] - a[2]) * t))


@lru_cache(maxsize=16)
def draw(size: int = 256) -> Image.Image:
    """The icon as an RGBA image of size x size (drawn at 4x and scaled down: smooth edges)."""
    s = max(size, 16) * 4
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    # a soft halo behind the orb
    halo = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(halo).ellipse([s * 0.04, s * 0.04, s * 0.96, s * 0.96], fill=(*_TOP, 90))
    img.alpha_composite(halo.filter(ImageFilter.GaussianBlur(s * 0.03)))
    # the orb: a vertical gradient clipped to a circle
    gradient = Image.new("RGBA", (s, s))
    gd = ImageDraw.Draw(gradient)
    for y in range(s):
        gd.line([(0, y), (s, y)], fill=(*_lerp(_TOP, _BOTTOM, y / (s - 1)), 255))
    mask = Image.new("L", (s, s), 0)
    pad = s * 0.1
    ImageDraw.Draw(mask).ellipse([pad, pad, s - pad, s - pad], fill=255)
    img.paste(gradient, (0, 0), mask)
    d = ImageDraw.Draw(img)
    # a highlight, top left
    hl = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    ImageDraw.Draw(hl).ellipse([s * 0.24, s * 0.18, s * 0.5, s * 0.4], fill=(255, 255, 255, 70))
    img.alpha_composite(hl.filter(ImageFilter.GaussianBlur(s * 0.03)))
    # eyes and a smile
    ink = (30, 20, 60, 255)
    for cx in (0.4, 0.6):
        d.ellipse([s * (cx - 0.035), s * 0.42, s * (cx + 0.035), s * 0.54], fill=ink)
    width = max(2, round(s * 0.03))
    points = [
        (s * (0.4 + 0.2 * t), s * (0.62 + 0.05 * math.sin(math.pi * t))) for t in (i / 24 for i in range(25))
    ]
    d.line(points, fill=ink, width=width, joint="curve")
    return img.resize((size, size), Image.Resampling.LANCZOS)


def png_bytes(size: int = 256) -> bytes:
    buf = io.BytesIO()
    draw(size).save(buf, "PNG")
    return buf.getvalue()


def write_icons(out: Path) -> dict[str, Path]:
    """companion.png (256), companion.svg-free hicolor PNGs (hicolor/<n>x<n>/apps/companion.png),
    companion.ico and companion.icns under out; returns the main ones by kind."""
    out.mkdir(parents=True, exist_ok=True)
    for n in SIZES:
        path = out / "hicolor" / f"{n}x{n}" / "apps" / "companion.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        draw(n).save(path)
    main = out / "companion.png"
    draw(256).save(main)
    ico = out / "companion.ico"
    draw(256).save(ico, sizes=[(n, n) for n in SIZES if n <= 256])
    icns = out / "companion.icns"
    draw(512).save(icns)
    return {"png": main, "ico": ico, "icns": icns}


def main(argv: list[str] | None = None) -> int:
    """Write the icon files into OUT_DIR."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    for kind, path in write_icons(args.out).items():
        print(f"{kind}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
