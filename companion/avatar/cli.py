"""`companion avatar ...`: draw the built-in avatar natively (snapshots, the gallery) and measure
its frames."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from companion.avatar.pose import VISEMES
from companion.emotion import EMOTIONS
from companion.errors import CompanionError
from companion.settings import Settings

GALLERY_VISEMES = ("closed", "aa", "oh")


def _renderer():
    from companion.avatar.render import AvatarRenderer

    return AvatarRenderer(adapter=Settings.load().adapter)


@click.group(name="avatar")
def avatar_group() -> None:
    """Draw the avatar natively (wgpu-py) and measure it."""


@avatar_group.command("snapshot")
@click.option("--emotion", type=click.Choice(EMOTIONS), default="neutral", show_default=True, help="The face to show.")
@click.option("--viseme", type=click.Choice(VISEMES), default="closed", show_default=True, help="The mouth shape.")
@click.option("--intensity", type=click.FloatRange(0, 1), default=1.0, show_default=True, help="How strongly the emotion shows.")
@click.option("--blink", type=click.FloatRange(0, 1), default=0.0, help="Eyelid closure (1 = shut).")
@click.option("--gaze", type=(click.FloatRange(-1, 1), click.FloatRange(-1, 1)), default=(0.0, 0.0), help="Where the eyes look: x (-1 screen left .. 1) and y (-1 down .. 1).")
@click.option("--time", "t", type=float, default=0.0, help="Seconds of idle motion (hair sway, cues).")
@click.option("--size", type=click.IntRange(16, 4096), default=512, show_default=True, help="Width and height in pixels.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The PNG to write (transparent background).")
def snapshot(emotion: str, viseme: str, intensity: float, blink: float, gaze: tuple[float, float], t: float, size: int, out: Path) -> None:
    """Render one still of the avatar to a PNG."""
    from companion.avatar.pose import Pose
    from companion.avatar.render import png_bytes

    pose = Pose.still(emotion, viseme, intensity).model_copy(update={"blink": blink, "gaze_x": gaze[0], "gaze_y": gaze[1], "time": t})  # type: ignore[arg-type]
    try:
        out.write_bytes(png_bytes(_renderer().render(pose, size)))
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror}") from exc
    except CompanionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"wrote {out} ({size}x{size}, {emotion}, {viseme})")


@avatar_group.command("gallery")
@click.option("--size", type=click.IntRange(32, 1024), default=192, show_default=True, help="Side of each cell in pixels.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The PNG to write.")
def gallery(size: int, out: Path) -> None:
    """Render every emotion with the closed, aa and oh mouths into one labelled PNG."""
    from PIL import Image

    from companion.avatar.pose import Pose
    from companion.avatar.render import contact_sheet

    try:
        r = _renderer()
        cells: dict[tuple[str, str], Any] = {(e, v): r.render(Pose.still(e, v), size) for e in EMOTIONS for v in GALLERY_VISEMES}
    except CompanionError as exc:
        raise click.ClickException(str(exc)) from exc
    Image.fromarray(contact_sheet(cells, list(EMOTIONS), list(GALLERY_VISEMES))).save(out)
    click.echo(f"wrote {out}")


@avatar_group.command("bench")
@click.option("--size", type=click.IntRange(16, 2048), default=256, show_default=True, help="Frame side in pixels (the page asks for up to 256).")
@click.option("--frames", type=click.IntRange(1), default=60, show_default=True, help="Frames to time back to back.")
@click.option("--stream", "stream_s", type=click.FloatRange(0), default=3.0, show_default=True, help="Seconds of frames through the stream, idle and busy (0: skip).")
@click.option("--decode", "decode_s", type=click.FloatRange(0), default=0.0, help="Also measure while the native engine decodes, this many seconds per case.")
@click.option("--page", "page_s", type=click.FloatRange(0), default=0.0, help="Also measure the page in headless Chromium (WebGPU, and native frames with navigator.gpu removed), this many seconds per case.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench(size: int, frames: int, stream_s: float, decode_s: float, page_s: float, as_json: bool) -> None:
    """Time avatar frames (and their CPU cost) natively and in the page, alone and while the model
    decodes, and check that the frame rate adapts while it does."""
    from companion.avatar.bench import bench_native

    settings = Settings.load()
    try:
        result = bench_native(size, frames, decode_s, settings.model_path, settings.adapter, stream_s)
        if page_s > 0:
            from companion.avatar.bench_page import bench_page

            result["page"] = bench_page(page_s, decode_s > 0, settings.model_path, settings.adapter)
    except CompanionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@avatar_group.command("import")
@click.argument("model", type=click.Path(dir_okay=False, path_type=Path))
def import_model(model: Path) -> None:
    """Check a VRM model (0.x or 1.0), copy it into Companion's data folder and draw it instead of
    the built-in avatar."""
    from companion.avatar.vrm import import_vrm
    from companion.settings import home_dir

    try:
        settings = Settings.load()
        info = import_vrm(model, home_dir())
        settings.model_copy(update={"avatar_model": info.path}).save()
    except CompanionError as exc:
        raise click.ClickException(f"{exc} (the built-in avatar stays)") from exc
    title = f" ({info.title})" if info.title else ""
    click.echo(f"imported VRM {info.version} model{title} as {info.path}; the page draws it from its next start")


@avatar_group.command("builtin")
def use_builtin() -> None:
    """Go back to the built-in avatar (imported models stay in the data folder)."""
    try:
        Settings.load().model_copy(update={"avatar_model": None}).save()
    except CompanionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("the built-in avatar is drawn from the page's next start")
