"""The persona part of the system prompt, and greetings, from a Character."""

from __future__ import annotations

from companion.persona.card import Character, render

DEFAULT_SYSTEM_PROMPT = (
    "You are {{char}}, talking with {{user}}. Stay in character, reply naturally and concisely."
)


def persona_prompt(char: Character, user: str = "User", *, examples: bool = True) -> str:
    """System prompt text for a character: its system prompt, then description, personality,
    scenario and (optionally) example dialogue, with macros rendered."""
    parts = [char.system_prompt.strip() or DEFAULT_SYSTEM_PROMPT]
    if char.description.strip():
        parts.append(char.description.strip())
    if char.personality.strip():
        parts.append(f"{{{{char}}}}'s personality: {char.personality.strip()}")
    if char.scenario.strip():
        parts.append(f"Scenario: {char.scenario.strip()}")
    if examples and char.mes_example.strip():
        dialogue = char.mes_example.replace("<START>", "").strip()
        parts.append(f"Example of how {{{{char}}}} talks:\n{dialogue}")
    return render("\n\n".join(parts), char, user)


def greetings(char: Character, user: str = "User") -> list[str]:
    """The first message and alternate greetings, rendered; empty strings dropped."""
    return [render(g, char, user) for g in [char.first_mes, *char.alternate_greetings] if g.strip()]
