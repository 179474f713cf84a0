"""Wiring: settings -> model -> engine (with fallback) -> chat session (with memory and
persona), for the terminal and the desktop window."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from companion.chat import ASSISTANT_NAMES, DEFAULT_SYSTEM, ChatSession
from companion.engines.choice import create_engine, fallback_factory, try_page_engine
from companion.model import load_model
from companion.sampling import SamplingParams
from companion.settings import Settings


def build_session(
    settings: Settings,
    sampling: SamplingParams | None = None,
    system_prompt: str | None = None,
    report: Callable[[str], None] = lambda m: None,
    memory: bool = True,
    page_server: Any = None,
) -> ChatSession:
    """A ready chat session for the settings. With memory, the active character's persona,
    long-term memories and the stored conversation build each prompt, and every turn is
    persisted; an explicit system_prompt replaces the character (and memory) for this session.
    With page_server (the desktop window's bridge), the window's WebGPU runs the model where it
    can (engine auto or browser)."""
    from companion.model.registry import apply_model_settings

    model = load_model(settings.model_path)
    settings = apply_model_settings(settings, model)  # its own context length and template
    engine = None
    if page_server is not None and settings.engine in ("auto", "browser"):
        engine = try_page_engine(settings, model, page_server, report)
    if engine is None:
        name = "auto" if settings.engine == "browser" else settings.engine
        engine = create_engine(name, model, settings.context_length, settings.adapter, report, settings.gpu_features)
    fallback = None
    if engine.name != "reference":
        fallback = fallback_factory(model, settings.context_length, settings.adapter, report, settings.gpu_features)
    session = ChatSession(
        model,
        engine,
        sampling=sampling,
        system_prompt=system_prompt if system_prompt is not None else DEFAULT_SYSTEM,
        max_new_tokens=settings.max_new_tokens,
        fallback=fallback,
    )
    if memory and system_prompt is None:
        attach_memory(session, settings)
    return session


def attach_memory(session: ChatSession, settings: Settings, conversation_id: int | None = None) -> None:
    """Persist the session's turns and build its prompts from persona + memories + summary."""
    from companion.memory import ConversationMemory, Store
    from companion.memory.session import wants_model_extraction

    tmpl, tk = session.template, session.tokenizer
    mem = ConversationMemory(
        Store(),
        count_tokens=session.count_tokens,
        character=settings.character,
        conversation_id=conversation_id,
        generate=lambda msgs: session.complete(msgs, max_tokens=160),
        count_messages=lambda msgs: len(tk.encode(tmpl.render(msgs, add_generation_prompt=True))),
        memory_enabled=settings.memory_enabled,
        memory_budget=settings.memory_token_budget,
        extract_with_model=wants_model_extraction(settings.memory_model_extraction,
                                                  session.model.summary()["parameters"]),
    )
    session.prompt_builder = mem
    session.recorder = mem
    session.memory = mem
    card = mem.store.character(mem.character_id).card
    session.speaker_names = (card.display_name, card.name, *ASSISTANT_NAMES)

