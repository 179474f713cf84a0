"""A private virtual X display (Xvfb) for desktop tests and headless machines."""

from __future__ import annotations

import os
import shutil
import subprocess

from companion._proc import stop_process
from companion.errors import CompanionError
from companion.settings import env_name


class Xvfb:
    """Start Xvfb on a free display and point DISPLAY at it while the block runs.

    Xvfb picks the display number itself and reports it through -displayfd once it accepts
    connections, so there is no polling and no race with other displays.
    """

    def __init__(self, width: int = 1280, height: int = 800, depth: int = 24) -> None:
        self.size = f"{width}x{height}x{depth}"
        self.display: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> str:
        """Start the server; return the display name (":N")."""
        exe = shutil.which("Xvfb")
        if exe is None:
            raise CompanionError("Xvfb is not installed: apt-get install xvfb")
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [exe, "-displayfd", str(write_fd), "-screen", "0", self.size, "-nolisten", "tcp",
                 "-noreset", "+extension", "GLX", "+extension", "RANDR"],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            os.close(write_fd)
            write_fd = -1
            number = b""
            while not number.endswith(b"\n"):
                chunk = os.read(read_fd, 16)  # blocks until Xvfb is ready (or exits: b"")
                if not chunk:
                    raise CompanionError(
                        f"Xvfb exited with status {self._proc.wait(5)} before starting"
                    )
                number += chunk
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        self.display = f":{int(number)}"
        return self.display

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None

    def __enter__(self) -> str:
        display = self.start()
        # Settings.xvfb, for this process and the ones it starts (the desktop window)
        for key, value in (("DISPLAY", display), (env_name("xvfb"), "1")):
            self._saved[key] = os.environ.get(key)
            os.environ[key] = value
        self._saved.setdefault("WAYLAND_DISPLAY", os.environ.pop("WAYLAND_DISPLAY", None))
        return display

    def __exit__(self, *exc: object) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.stop()
