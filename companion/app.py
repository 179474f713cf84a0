"""Wiring: settings -> model -> engine (with fallback) -> chat session (with memory and
persona), for the terminal and the desktop window."""

from __future__ import annotations

from collections.abc import Callable

from companion.chat import DEFAULT_SYSTEM, ChatSession
from companion.engines import create_engine, fallback_factory
from companion.model import load_model
from companion.sampling import SamplingParams
from companion.settings import Settings


def build_session(
    settings: Settings,
    sampling: SamplingParams | None = None,
    system_prompt: str | None = None,
    report: Callable[[str], None] = lambda m: None,
) -> ChatSession:
    """A ready chat session for the settings."""
    model = load_model(settings.model_path)
    engine = create_engine(settings.engine, model, settings.context_length, settings.adapter, report)
    fallback = None
    if engine.name != "reference":
        fallback = fallback_factory(model, settings.context_length, settings.adapter, report)
    return ChatSession(
        model,
        engine,
        sampling=sampling,
        system_prompt=system_prompt if system_prompt is not None else DEFAULT_SYSTEM,
        max_new_tokens=settings.max_new_tokens,
        fallback=fallback,
    )


def run_desktop_app(settings: Settings) -> None:
    """Open the desktop window on the companion page."""
    from companion.shell.app import run

    run(settings)
