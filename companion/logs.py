"""Logging: a rotating log file in the per-user log folder, and warnings (or everything with
--verbose) on stderr.

The folder is platformdirs' user_log_dir ("~/.local/state/companion/log" on Linux,
"%LOCALAPPDATA%\\companion\\Logs" on Windows, "~/Library/Logs/companion" on macOS), or
COMPANION_HOME/logs when COMPANION_HOME redirects all state (tests, portable installs)."""

from __future__ import annotations

import faulthandler
import logging
import logging.handlers
import os
import sys
import threading
from pathlib import Path
from types import TracebackType

import platformdirs

from companion.settings import APP_NAME

LOG_FILE = "companion.log"
CRASH_FILE = "crash.log"  # Python tracebacks of every thread when the process dies of a signal
MAX_BYTES = 1_000_000  # rotate at 1 MB ...
BACKUPS = 4  # ... keeping companion.log.1 .. .4: at most 5 MB of logs
_FORMAT = "%(asctime)s %(levelname)-7s %(process)d %(threadName)s %(name)s: %(message)s"
_MARK = "_companion_handler"  # set on the handlers this module adds (configure twice = once)


def log_dir() -> Path:
    """The folder holding companion.log (not created)."""
    home = os.environ.get("COMPANION_HOME")
    if home:
        return Path(home) / "logs"
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def log_file() -> Path:
    return log_dir() / LOG_FILE


def setup_logging(verbose: bool = False, *, console: bool = True) -> Path | None:
    """Send the app's log records to the rotating file (INFO and up, DEBUG with verbose) and
    to stderr (WARNING and up, INFO with verbose); log uncaught exceptions of every thread.
    Returns the log file, or None where it cannot be written (the console still works)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    path = log_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True
        )
    except OSError as exc:
        sys.stderr.write(f"companion: cannot write the log file {path}: {exc}\n")
        file_handler = None
    if file_handler is not None:
        file_handler.setFormatter(logging.Formatter(_FORMAT))
        file_handler.setLevel(logging.DEBUG if verbose else logging.INFO)
        _add(root, file_handler)
    if console:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(logging.Formatter("%(message)s"))
        stream.setLevel(logging.INFO if verbose else logging.WARNING)
        _add(root, stream)
    logging.captureWarnings(True)
    # not "wgpu": it installs its own Logger class and asserts nobody made its logger first
    for noisy in ("asyncio", "aiohttp.access", "PIL", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_thread_uncaught
    return path if file_handler is not None else None


_crash_stream = None  # kept open for the process's life: faulthandler writes to its descriptor


def record_crashes() -> None:
    """On a fatal signal (a segfault in a native library: Qt, a GPU driver) write every
    thread's Python stack to crash.log beside the log: the desktop app has no console to
    print them on, and a bug report can attach the file."""
    global _crash_stream
    if _crash_stream is None:
        try:
            log_dir().mkdir(parents=True, exist_ok=True)
            _crash_stream = open(log_dir() / CRASH_FILE, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
        except OSError:
            return
    faulthandler.enable(file=_crash_stream, all_threads=True)


def _add(root: logging.Logger, handler: logging.Handler) -> None:
    setattr(handler, _MARK, True)
    root.addHandler(handler)


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("companion").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_thread_uncaught(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("companion").critical(
        "uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback)
    )
