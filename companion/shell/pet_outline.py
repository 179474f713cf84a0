"""The pet's outline, drawn in a short-lived child process.

Drawing the built-in avatar's outline (companion.shell.pet.Outlines.rows) makes a wgpu device
and, on a CPU adapter (lavapipe), a pool of worker threads. Done on a thread of the desktop
app it left a second device living beside Qt in the GUI process, and the app could crash on
quit; so the app never draws it itself. It reads the outline from pet-outline.json in the data
folder when it is there, and otherwise runs `companion _pet-outline` (a hidden subcommand; the
frozen app's binary takes the same arguments) at a lower priority, waits for it off the UI
thread, and reads what the child kept in that file. Until then, and when the child fails, times
out or is killed, the window keeps its disc, and the log says why.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from companion.shell import pet

log = logging.getLogger(__name__)

COMMAND = "_pet-outline"
TIMEOUT_S = 120.0  # 5-18 s on lavapipe with 2 busy cores; a child past this is stuck
NICE = 10  # the child's (and so its CPU adapter's workers') lower priority


def child_command() -> list[str]:
    """How to run this module's subcommand: the frozen app's binary is `companion` itself."""
    if getattr(sys, "frozen", False):
        return [sys.executable, COMMAND]
    return [sys.executable, "-m", "companion", COMMAND]


class ChildOutlines:
    """The pet's input region per window size, drawn by a child process when it is not kept yet.
    `rows()` blocks (call it off the UI thread); `stop()` ends a running child (at quit)."""

    def __init__(self, outlines: pet.Outlines | None = None, command: list[str] | None = None,
                 timeout: float = TIMEOUT_S) -> None:  # fmt: skip
        self.outlines = outlines or pet.Outlines()
        self.command = command  # the child's command line before its options (tests: a failing one)
        self.timeout = timeout
        self._lock = threading.Lock()  # one child at a time: a second asker finds the first's outline kept
        self._proc: subprocess.Popen[str] | None = None
        self._stopped = False

    def stop(self) -> None:
        """Kill the running child, if any; later calls to rows() start none."""
        self._stopped = True
        proc = self._proc
        if proc is not None and proc.poll() is None:
            log.info("pet outline: stopping its child process (pid %d)", proc.pid)
            proc.kill()

    def rows(self, width: int, height: int, ratio: float = 1.0, adapter: str | None = None,
             avatar_model: Path | None = None) -> tuple[list[pet.Rect] | None, str]:  # fmt: skip
        """(the outline's rectangles, how they were found), or (None, why the disc stays)."""
        if avatar_model is not None:
            return None, f"the VRM model {avatar_model.name} is drawn by the page; its outline is not known here"
        with self._lock:
            try:
                key = self.outlines.key(width, height)
            except Exception as exc:  # noqa: BLE001 - the shader is missing: the page cannot draw it either
                return None, f"the avatar's shader cannot be read ({exc})"
            found = self.outlines.cached(key)
            if found is not None:
                return found, f"{len(found)} rectangles, kept in {self.outlines.file().name}"
            if self._stopped:
                return None, "the app is quitting"
            drawn, how = self._run_child(width, height, ratio, adapter)
            found = self.outlines.cached(key) if drawn else None
            if drawn and found is None:
                how = f"the child process ended but {self.outlines.file()} holds no outline for {key}"
            if found is None:
                (log.info if self._stopped else log.warning)("pet outline: %s; keeping the disc", how)
                return None, how
            return found, how

    def _run_child(self, width: int, height: int, ratio: float, adapter: str | None) -> tuple[bool, str]:
        """Run the child to its end: (True, how it drew the outline) or (False, why not)."""
        args = ["--width", str(width), "--height", str(height), "--ratio", repr(float(ratio)),
                "--out", str(self.outlines.file())]  # fmt: skip
        if adapter:
            args += ["--adapter", adapter]
        cmd = [*(self.command or child_command()), *args]
        t0 = time.monotonic()
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, errors="replace", close_fds=True,
            )  # fmt: skip
        except OSError as exc:
            return False, f"cannot start the child process {cmd[0]} ({exc})"
        self._proc = proc
        log.info("pet outline: drawing it in a child process (pid %d)", proc.pid)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            return False, f"the child process took over {self.timeout:.0f} s and was killed{_tail(err)}"
        finally:
            self._proc = None
        seconds = time.monotonic() - t0
        said = next((line for line in reversed(out.splitlines()) if line.strip()), "")
        if proc.returncode < 0:
            if self._stopped:
                return False, "the app is quitting: its child process was stopped"
            return False, f"the child process was killed by signal {-proc.returncode}{_tail(err)}"
        if proc.returncode != 0:
            return False, f"the child process exited with status {proc.returncode}: {said or 'no reason given'}{_tail(err)}"
        return True, f"{said or 'drawn'}; child process {seconds:.1f} s"


def _tail(err: str, lines: int = 3) -> str:
    """The last lines of the child's stderr, for the log."""
    kept = [line for line in err.strip().splitlines() if line.strip()][-lines:]
    return (" (stderr: " + " | ".join(kept) + ")") if kept else ""


def draw(width: int, height: int, ratio: float, adapter: str | None, out: Path) -> int:
    """The child's work: lower its priority (before any adapter's threads exist), draw the
    outline, keep it in `out`; print how (or why not) on one line; 0 when drawn."""
    if hasattr(os, "nice"):
        try:
            os.nice(NICE)
        except OSError:
            pass
    rects, how = pet.Outlines(out).rows(width, height, ratio, adapter)
    click.echo(how)
    return 0 if rects is not None else 1


@click.command(COMMAND, hidden=True)
@click.option("--width", type=click.IntRange(1, 8192), required=True, help="The pet window's width in device pixels.")
@click.option("--height", type=click.IntRange(1, 8192), required=True, help="Its height in device pixels.")
@click.option("--ratio", type=click.FloatRange(0.1, 16), default=1.0, show_default=True, help="Device pixels per logical pixel.")
@click.option("--adapter", default=None, help="The GPU adapter to draw on (substring of its name).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="The outline cache (pet-outline.json).")
def outline_command(width: int, height: int, ratio: float, adapter: str | None, out: Path) -> None:
    """Internal: draw the built-in avatar's outline for the pet window (the desktop app runs this)."""
    sys.exit(draw(width, height, ratio, adapter, out))
