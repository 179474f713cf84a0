"""Fixtures for memory / persona / storage tests (imported by tests/conftest.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def companion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private COMPANION_HOME (tests/conftest.py may already set one; this one wins)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("COMPANION_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 encoder, loaded once per session."""
    from companion.memory.embed import get_embedder

    return get_embedder()


@pytest.fixture
def store(companion_home: Path, embedder) -> Iterator:
    """A fresh Store in the private home, with the real embedder."""
    from companion.memory.store import Store

    s = Store(embedder=embedder)
    yield s
    s.close()


@pytest.fixture
def plain_store(companion_home: Path) -> Iterator:
    """A fresh Store without embeddings (full-text recall only): fast for storage tests."""
    from companion.memory.store import Store

    s = Store(embedder=None)
    yield s
    s.close()


def count_words(text: str) -> int:
    """A stand-in tokenizer: one token per word or punctuation mark."""
    return len(re.findall(r"\w+|[^\w\s]", text))


@pytest.fixture
def count_tokens():
    """Token counter used instead of the chat model's tokenizer."""
    return count_words
