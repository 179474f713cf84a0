"""One desktop instance per user: a lock in the user data folder and a loopback channel.

The first instance takes an exclusive lock on `instance.lock` (flock on POSIX, msvcrt on
Windows: the kernel drops it when the process dies, however it dies, so the lock a crashed
instance leaves behind is simply taken over), listens on 127.0.0.1 and writes its pid, port
and a fresh secret into `instance.json` (mode 0600). A later launch finds the lock taken,
reads the port and secret, and sends one JSON line — {"secret", "command", "argv"} — which the
first instance answers after checking the secret; the shell then brings its window forward.
Nothing listens beyond loopback, and a message without the secret is dropped unanswered.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from companion.errors import CompanionError

log = logging.getLogger(__name__)

LOCK_FILE = "instance.lock"
INFO_FILE = "instance.json"
COMMANDS = ("show", "pet", "quit", "ping")  # what a later launch may ask of the running one
_MAX_MESSAGE = 64 * 1024


class InstanceError(CompanionError):
    """Another Companion holds the lock but cannot be reached."""


def _lock(fh: IO[bytes]) -> bool:
    """Take the exclusive lock on an open file without waiting; False when it is held."""
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class SingleInstance:
    """`acquire()` → True: this is the one instance (call `serve(handler)`), False: another
    runs (call `send("show")`). `release()` (or exiting the process) lets the next one in."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.lock_path = folder / LOCK_FILE
        self.info_path = folder / INFO_FILE
        self.secret = secrets.token_urlsafe(32)
        self._fh: IO[bytes] | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    # --- the first instance ---------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the lock; True when no other instance holds it (a dead one's lock counts as free)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+b")  # noqa: SIM115 - held open for the process's life
        if not _lock(fh):
            fh.close()
            return False
        self._fh = fh
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n".encode())
        fh.flush()
        return True

    def serve(self, handler: Callable[[str, list[str]], None]) -> int:
        """Listen on loopback for later launches; handler(command, argv) runs on a helper
        thread for each authentic message. Returns the port."""
        if self._fh is None:
            raise InstanceError("serve() needs the lock: call acquire() first")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        self._sock = sock
        self.port = sock.getsockname()[1]
        info = {"pid": os.getpid(), "port": self.port, "secret": self.secret}
        tmp = self.info_path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self.info_path)
        self._thread = threading.Thread(
            target=self._accept, args=(sock, handler), name="companion-instance", daemon=True
        )
        self._thread.start()
        log.info("single instance: pid %d listening on 127.0.0.1:%d", os.getpid(), self.port)
        return self.port

    def _accept(self, sock: socket.socket, handler: Callable[[str, list[str]], None]) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed by release()
            with conn:
                conn.settimeout(5)
                try:
                    message = _read_line(conn)
                    command, argv = self._check(message)
                except (OSError, ValueError) as exc:
                    log.warning("single instance: ignored a message (%s)", exc)
                    continue
                conn.sendall(b'{"ok": true}\n')
            log.info("single instance: a later launch asked %r", command)
            try:
                handler(command, argv)
            except Exception:  # noqa: BLE001 - one bad request must not stop the listener
                log.exception("single instance: handling %r failed", command)

    def _check(self, message: dict[str, Any]) -> tuple[str, list[str]]:
        secret = message.get("secret")
        if not isinstance(secret, str) or not hmac.compare_digest(secret, self.secret):
            raise ValueError("wrong secret")
        command = message.get("command")
        if command not in COMMANDS:
            raise ValueError(f"unknown command {command!r}")
        argv = message.get("argv") or []
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv is not a list of strings")
        return command, argv

    def release(self) -> None:
        """Stop listening and let the next launch take over."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        if self._fh is not None:
            try:
                if json.loads(self.info_path.read_text()).get("pid") == os.getpid():
                    self.info_path.unlink()
            except (OSError, ValueError):
                pass
            self._fh.close()  # drops the lock
            self._fh = None

    # --- a later launch -------------------------------------------------------------------------

    def send(self, command: str, argv: list[str] | None = None, timeout: float = 10.0) -> None:
        """Deliver a command to the running instance. Its info file may not be written yet (it
        is starting), so retry until timeout; InstanceError when it never answers."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                info = json.loads(self.info_path.read_text())
                with socket.create_connection(("127.0.0.1", int(info["port"])), timeout=5) as conn:
                    payload = {"secret": info["secret"], "command": command, "argv": argv or []}
                    conn.sendall(json.dumps(payload).encode() + b"\n")
                    if _read_line(conn).get("ok") is True:
                        return
                    last = ValueError("no acknowledgement")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                last = exc
            if self.acquire():  # the other one exited meanwhile: we are first after all
                self.release()
                raise InstanceError("the running Companion exited while we were contacting it: start it again")
            if time.monotonic() > deadline:
                raise InstanceError(
                    f"Companion is already running but does not answer ({last}); "
                    f"if it hangs, end it (pid in {self.lock_path}) and start again"
                )
            time.sleep(0.1)

    def running_pid(self) -> int | None:
        """The pid the lock file names (whether or not that process still holds the lock)."""
        try:
            return int(self.lock_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _read_line(conn: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
        if len(data) > _MAX_MESSAGE:
            raise ValueError("message too long")
    value = json.loads(data.decode() or "null")
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    """Hold the instance lock in COMPANION_HOME (tests): print the port, then one line per
    command received; exit on "quit"."""
    from companion.settings import home_dir

    inst = SingleInstance(home_dir())
    if not inst.acquire():
        inst.send("show", list(argv or sys.argv[1:]))
        print("secondary", flush=True)
        return 0
    done = threading.Event()

    def handle(command: str, args: list[str]) -> None:
        print(f"{command} {json.dumps(args)}", flush=True)
        if command == "quit":
            done.set()

    print(f"primary {inst.serve(handle)}", flush=True)
    done.wait()
    inst.release()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
