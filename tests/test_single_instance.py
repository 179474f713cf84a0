"""One desktop instance: a second launch reaches the first; a crashed one's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from companion.shell.instance import InstanceError, SingleInstance

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def _holder(home) -> subprocess.Popen[str]:
    """A real process holding the instance lock in `home` (companion.shell.instance's main)."""
    env = dict(os.environ, COMPANION_HOME=str(home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "companion.shell.instance"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first and first[0] == "primary", proc.stderr.read() if proc.stderr else ""
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


def test_second_launch_reaches_the_first(companion_home):
    proc = _holder(companion_home)
    try:
        second = SingleInstance(companion_home)
        assert second.acquire() is False
        second.send("show", ["--from", "test"])
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == 'show ["--from", "test"]'
        second.send("quit")
        assert proc.wait(10) == 0
    finally:
        _stop(proc)
    # a clean exit hands the lock over and removes the info file
    third = SingleInstance(companion_home)
    assert third.acquire() is True
    assert not third.info_path.exists()
    third.release()


def test_a_message_without_the_secret_is_ignored(companion_home):
    proc = _holder(companion_home)
    try:
        info = json.loads((companion_home / "instance.json").read_text())
        assert oct((companion_home / "instance.json").stat().st_mode & 0o777) == "0o600"
        with socket.create_connection(("127.0.0.1", info["port"]), timeout=5) as conn:
            conn.sendall(json.dumps({"secret": "guess", "command": "quit"}).encode() + b"\n")
            assert conn.recv(100) == b""  # dropped unanswered
        SingleInstance(companion_home).send("ping")  # still alive and listening
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ping []"
    finally:
        _stop(proc)


def test_the_lock_of_a_killed_instance_is_recovered(companion_home):
    proc = _holder(companion_home)
    pid = proc.pid
    os.kill(pid, signal.SIGKILL)  # a crash: no clean-up runs
    proc.wait(10)
    assert (companion_home / "instance.json").exists()  # stale info left behind
    inst = SingleInstance(companion_home)
    assert inst.running_pid() == pid
    assert inst.acquire() is True  # the kernel dropped the dead process's lock
    try:
        port = inst.serve(lambda command, argv: None)
        assert json.loads(inst.info_path.read_text())["port"] == port
        assert inst.running_pid() == os.getpid()
    finally:
        inst.release()


def test_a_holder_that_never_answers_is_reported(companion_home):
    holder = SingleInstance(companion_home)
    assert holder.acquire()  # holds the lock but never serves (a hung instance)
    try:
        with pytest.raises(InstanceError, match="does not answer"):
            SingleInstance(companion_home).send("show", timeout=0.5)
    finally:
        holder.release()
