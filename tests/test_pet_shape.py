"""The pet window's input region: row runs from an alpha mask (YX-banded, vertically identical
rows folded), growing a mask, logical pixels for Qt's mask, and the built-in avatar's outline
drawn natively (lavapipe here) by the child process the app runs (`companion _pet-outline`):
where it takes clicks, where it lets them through, the cache, and the disc kept where nothing
can draw, a VRM model is chosen, or the child fails, times out, is killed or stopped. The real
window's input shape under Xvfb is checked in tests/test_shell.py
(test_pet_window_click_through_drag_and_click)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from companion.errors import EngineUnavailable
from companion.shell import pet, pet_outline


def _paint(rects: list[pet.Rect], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.int32)  # counts: overlapping rectangles would show as 2
    for x, y, w, h in rects:
        out[y : y + h, x : x + w] += 1
    return out


def _assert_yx_banded(rects: list[pet.Rect]) -> None:
    """X11's YXBanded: sorted by y then x; a band's rectangles share y and height; no overlaps
    within a band; bands do not overlap."""
    assert rects == sorted(rects, key=lambda r: (r[1], r[0]))
    bands: dict[int, list[pet.Rect]] = {}
    for r in rects:
        bands.setdefault(r[1], []).append(r)
    previous_bottom = 0
    for y, band in sorted(bands.items()):
        assert len({r[3] for r in band}) == 1
        assert y >= previous_bottom
        previous_bottom = y + band[0][3]
        for a, b in zip(band, band[1:], strict=False):
            assert a[0] + a[2] < b[0]  # runs are separate (a gap of at least one pixel)


def test_runs_from_a_synthetic_alpha_mask():
    alpha = np.zeros((40, 60), np.uint8)  # (H, W)
    alpha[5:15, 10:30] = 255  # a block: one band of one rectangle
    alpha[15:25, 10:20] = 200  # two legs: one band of two rectangles
    alpha[15:25, 24:30] = 90
    yy, xx = np.mgrid[0:40, 0:60]
    alpha[(yy - 32) ** 2 + (xx - 45) ** 2 <= 36] = 255  # a disc: a band per distinct row
    alpha[0, 59] = 3  # faint: below ALPHA_MIN, not part of the avatar
    mask = alpha >= pet.ALPHA_MIN
    rects = pet.mask_rows(mask)
    painted = _paint(rects, mask.shape)
    assert painted.max() == 1 and np.array_equal(painted == 1, mask)  # exact, no overlaps
    _assert_yx_banded(rects)
    assert (10, 5, 20, 10) in rects  # the block: 10 identical rows are one rectangle
    assert (10, 15, 10, 10) in rects and (24, 15, 6, 10) in rects
    # folded: one band per stretch of identical rows (the block's 10 rows, the legs' 10, ...)
    stretches = sum(1 for y in range(mask.shape[0]) if mask[y].any() and (y == 0 or not np.array_equal(mask[y], mask[y - 1])))
    assert len({r[1] for r in rects}) == stretches == 1 + 1 + 9  # block, legs, the disc: half-widths 0 3 4 5 5 5 6 5 5 5 4 3 0
    assert pet.mask_rows(np.zeros((8, 8), bool)) == []
    assert pet.mask_rows(np.ones((3, 4), bool)) == [(0, 0, 4, 3)]


def test_growing_a_mask_adds_a_disc_around_each_pixel():
    mask = np.zeros((21, 21), bool)
    mask[10, 10] = True
    grown = pet.grow(mask, 3)
    assert grown[10, 13] and grown[7, 10] and not grown[7, 7] and not grown[10, 14]
    assert 25 <= grown.sum() <= 37  # pi * 3^2 ~ 28, give or take the rounding
    assert np.array_equal(pet.grow(mask, 0), mask)
    edge = np.zeros((5, 5), bool)
    edge[0, 0] = True
    assert pet.grow(edge, 2)[2, 0] and pet.grow(edge, 2).shape == (5, 5)  # clipped at the border


def test_runs_in_logical_pixels_for_qts_mask():
    rects = [(0, 0, 440, 2), (101, 2, 3, 5)]
    assert pet.logical_rows(rects, 1.0) == rects
    assert pet.logical_rows(rects, 2.0) == [(0, 0, 220, 1), (50, 1, 2, 3)]  # rounded outwards


def test_no_adapter_or_a_vrm_model_keeps_the_disc(tmp_path: Path):
    def broken():
        raise EngineUnavailable("no WebGPU adapter")

    outlines = pet.Outlines(tmp_path / pet.OUTLINE_FILE, renderer=broken)
    rects, why = outlines.rows(220, 220)
    assert rects is None and "no adapter could draw the avatar" in why and "no WebGPU adapter" in why
    rects, why = outlines.rows(220, 220, avatar_model=Path("/data/avatars/alice.vrm"))
    assert rects is None and "alice.vrm" in why and "VRM" in why
    assert not (tmp_path / pet.OUTLINE_FILE).exists()


def _child(code: str) -> list[str]:
    """A stand-in for the outline's child process: a Python one-liner (the real options follow
    it on its command line, unread)."""
    return [sys.executable, "-c", code]


def _keep(path: Path, rects: list[pet.Rect], width: int = pet.SIZE, height: int = pet.SIZE) -> None:
    key = pet.Outlines(path).key(width, height)
    path.write_text(json.dumps({key: {"rects": [list(r) for r in rects], "seconds": 1.0}}), encoding="utf-8")


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("import sys; print('no adapter could draw the avatar (none here)'); sys.exit(1)",
         "exited with status 1: no adapter could draw the avatar (none here)"),
        ("import sys; sys.stderr.write('Traceback ...\\nImportError: wgpu\\n'); sys.exit(3)",
         "exited with status 3: no reason given (stderr: Traceback ... | ImportError: wgpu)"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed by signal 9"),
        ("print('drawn, but kept nowhere')", "holds no outline"),
    ],
    ids=["no-adapter", "crash", "killed", "nothing-kept"],
)  # fmt: skip
def test_a_failing_child_keeps_the_disc_and_says_why(tmp_path: Path, caplog, code: str, said: str):
    path = tmp_path / pet.OUTLINE_FILE
    outlines = pet_outline.ChildOutlines(pet.Outlines(path), command=_child(code))
    with caplog.at_level(logging.WARNING, logger="companion.shell.pet_outline"):
        rects, why = outlines.rows(pet.SIZE, pet.SIZE)
    assert rects is None and said in why, why
    assert any(said in r.getMessage() and "keeping the disc" in r.getMessage() for r in caplog.records), caplog.text
    assert not path.exists()


def test_a_child_past_its_time_is_killed(tmp_path: Path, caplog):
    outlines = pet_outline.ChildOutlines(pet.Outlines(tmp_path / pet.OUTLINE_FILE), command=_child("import time; time.sleep(60)"), timeout=1)
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="companion.shell.pet_outline"):
        rects, why = outlines.rows(pet.SIZE, pet.SIZE)
    assert rects is None and "took over 1 s and was killed" in why
    assert time.monotonic() - t0 < 20
    assert "keeping the disc" in caplog.text


def test_stopping_at_quit_kills_the_child_and_starts_no_other(tmp_path: Path, caplog):
    marker = tmp_path / "started"
    code = f"import pathlib, time; pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    outlines = pet_outline.ChildOutlines(pet.Outlines(tmp_path / pet.OUTLINE_FILE), command=_child(code))
    got: list[tuple] = []
    with caplog.at_level(logging.INFO, logger="companion.shell.pet_outline"):
        waiter = threading.Thread(target=lambda: got.append(outlines.rows(pet.SIZE, pet.SIZE)))
        waiter.start()
        deadline = time.monotonic() + 20
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        outlines.stop()
        waiter.join(20)
    assert not waiter.is_alive()
    (rects, why), = got
    assert rects is None and "quitting" in why
    assert "stopping its child process" in caplog.text
    marker.unlink()
    rects, why = outlines.rows(pet.SIZE, pet.SIZE)
    assert rects is None and "quitting" in why and not marker.exists()  # no second child


def test_a_kept_outline_starts_no_child_and_a_vrm_model_keeps_the_disc(tmp_path: Path):
    path = tmp_path / pet.OUTLINE_FILE
    kept = [(60, 20, 100, 180)]
    _keep(path, kept)
    never = _child("raise SystemExit('a child was started')")
    rects, how = pet_outline.ChildOutlines(pet.Outlines(path), command=never).rows(pet.SIZE, pet.SIZE)
    assert rects == kept and pet.OUTLINE_FILE in how
    rects, how = pet_outline.ChildOutlines(pet.Outlines(path), command=never).rows(pet.SIZE + 1, pet.SIZE)  # another size
    assert rects is None and "a child was started" in how
    rects, why = pet_outline.ChildOutlines(pet.Outlines(path), command=never).rows(
        pet.SIZE, pet.SIZE, avatar_model=Path("/data/avatars/alice.vrm"))  # fmt: skip
    assert rects is None and "alice.vrm" in why


def test_the_child_command_and_its_hidden_subcommand(monkeypatch, tmp_path: Path):
    from click.testing import CliRunner

    from companion.cli import main

    assert pet_outline.child_command() == [sys.executable, "-m", "companion", "_pet-outline"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert pet_outline.child_command() == [sys.executable, "_pet-outline"]  # the app binary is `companion`
    monkeypatch.delattr(sys, "frozen")
    runner = CliRunner()
    assert "_pet-outline" not in runner.invoke(main, ["--help"]).output
    niced: list[int] = []
    monkeypatch.setattr(pet_outline.os, "nice", lambda n: niced.append(n) or n)  # not this test process

    def broken(**kwargs):
        raise EngineUnavailable("no WebGPU adapter")

    monkeypatch.setattr("companion.avatar.render.AvatarRenderer", broken)
    out = tmp_path / pet.OUTLINE_FILE
    got = runner.invoke(main, ["_pet-outline", "--width", "220", "--height", "220", "--out", str(out)])
    assert got.exit_code == 1 and "no adapter could draw the avatar" in got.output and niced == [pet_outline.NICE]
    assert not out.exists()


@pytest.mark.gpu
def test_the_outline_of_the_builtin_avatar(avatar_renderer, tmp_path: Path):
    """The child process draws the outline and keeps it; it covers every extreme pose, takes
    clicks on the hair and the head, and lets them through in the corners, beside the head and
    beside the shoulders."""
    path = tmp_path / pet.OUTLINE_FILE
    rects, how = pet_outline.ChildOutlines(pet.Outlines(path)).rows(pet.SIZE, pet.SIZE)
    assert rects is not None, how
    print(how)
    assert "child process" in how
    _assert_yx_banded(rects)
    assert len(rects) < 400  # folded bands: a few hundred rectangles, not one per row and run
    inside = _paint(rects, (pet.SIZE, pet.SIZE)) > 0
    for pose in pet.extreme_poses():
        drawn = avatar_renderer.render(pose, pet.SIZE)[..., 3] >= pet.ALPHA_MIN
        assert not (drawn & ~inside).any()  # every pose is inside the outline
    s = pet.SIZE
    assert inside[s // 2, s // 2] and inside[s // 5, s // 2] and inside[s * 2 // 5, s * 3 // 10]  # face, fringe, hair
    for x, y in ((2, 2), (s - 3, s - 3), (2, s - 3), (s - 3, s * 2 // 5), (4, s // 2), (s // 12, s * 11 // 12)):
        assert not inside[y, x], (x, y)
    assert 0.45 < inside.mean() < 0.85  # neither the disc's square nor the bare face
    # kept: the next launch reads the file and draws nothing (no child, no renderer)
    again, how = pet_outline.ChildOutlines(pet.Outlines(path), command=_child("raise SystemExit('drawn again')")).rows(pet.SIZE, pet.SIZE)
    assert again == rects and pet.OUTLINE_FILE in how

    def no_drawing():
        raise AssertionError("the outline is cached: nothing should be drawn")

    again, how = pet.Outlines(path, renderer=no_drawing).rows(pet.SIZE, pet.SIZE)
    assert again == rects and pet.OUTLINE_FILE in how
