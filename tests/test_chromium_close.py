"""Closing the headless Chromium survives a profile that is still being written as it exits."""

from __future__ import annotations

import tempfile
from pathlib import Path

from companion.chromium import HeadlessChromium


class FlakyProfile:
    """A TemporaryDirectory whose first removals fail as when a helper process still writes."""

    def __init__(self, fails: int) -> None:
        self.inner = tempfile.TemporaryDirectory(prefix="companion-test-profile-")
        self.name = self.inner.name
        (Path(self.name) / "Default").mkdir()
        self.fails, self.calls = fails, 0

    def cleanup(self) -> None:
        self.calls += 1
        if self.calls <= self.fails:
            raise OSError(39, "Directory not empty", "Default")
        self.inner.cleanup()


def closed(profile: FlakyProfile) -> HeadlessChromium:
    chrome = HeadlessChromium.__new__(HeadlessChromium)  # no browser: only close() is under test
    chrome.profile, chrome.errors = profile, []
    chrome._pw = chrome._context = chrome._proc = None
    chrome.close()
    return chrome


def test_close_retries_a_profile_still_being_written():
    profile = FlakyProfile(fails=3)
    closed(profile)
    assert profile.calls == 4 and not Path(profile.name).exists()


def test_close_does_not_raise_when_the_profile_stays(caplog):
    profile = FlakyProfile(fails=10_000)
    with caplog.at_level("INFO", logger="companion.chromium"):
        closed(profile)  # no exception: the caller's close goes on
    assert profile.calls == 20 and Path(profile.name).exists()
    assert "could not be removed" in caplog.text
    profile.inner.cleanup()
