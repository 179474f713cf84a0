"""Rolling conversation summary: the model writes it when it can, rules when it cannot."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

Generate = Callable[[list[dict[str, str]]], str]
CountTokens = Callable[[str], int]

SUMMARY_PROMPT = (
    "You keep a short running summary of a conversation between {user} and {char}. Update the "
    "summary with the new messages. Keep names, facts, plans, feelings and open questions; drop "
    "small talk. Write plain sentences in the third person, at most {words} words. Answer with "
    "the summary only."
)
CLIP_WORDS = 60  # words of each message shown to the summarizer


def _clip_words(text: str, n: int) -> str:
    words = text.split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def _first_sentence(text: str, max_words: int = 20) -> str:
    first = re.split(r"(?<=[.!?])\s+", text.strip(), maxsplit=1)[0]
    return _clip_words(first, max_words)


def fit_sentences(text: str, count_tokens: CountTokens, budget: int, keep: str = "end") -> str:
    """The longest run of whole sentences (newest when keep='end') within budget tokens."""
    sentences = [s for s in re.split(r"(?<=[.!?])\s+|\n+", text.strip()) if s.strip()]
    if keep == "end":
        sentences.reverse()
    out: list[str] = []
    for s in sentences:
        trial = [*out, s]
        if count_tokens(" ".join(reversed(trial) if keep == "end" else trial)) > budget:
            break
        out = trial
    if keep == "end":
        out.reverse()
    return " ".join(out)


def rule_summary(
    previous: str | None, messages: Sequence[dict[str, Any]], *, user: str, char: str,
    count_tokens: CountTokens, budget: int,
) -> str:
    """Fallback: the first sentence of each message, oldest dropped first to fit the budget."""
    lines = [previous.strip()] if previous and previous.strip() else []
    for m in messages:
        if m["content"].strip() and m["role"] in ("user", "assistant"):
            who = user if m["role"] == "user" else char
            lines.append(f"{who} said: {_first_sentence(m['content'])}".rstrip(" .") + ".")
    return fit_sentences(" ".join(lines), count_tokens, budget)


def summarize(
    previous: str | None,
    messages: Sequence[dict[str, Any]],
    *,
    user: str,
    char: str,
    count_tokens: CountTokens,
    budget: int,
    generate: Generate | None = None,
) -> str:
    """A new rolling summary of `previous` + `messages`, at most `budget` tokens."""
    if generate is not None:
        transcript = "\n".join(
            f"{user if m['role'] == 'user' else char}: {_clip_words(m['content'], CLIP_WORDS)}"
            for m in messages if m["role"] in ("user", "assistant") and m["content"].strip()
        )
        prompt = SUMMARY_PROMPT.format(user=user, char=char, words=max(20, budget * 2 // 3))
        body = (f"Summary so far: {previous}\n\n" if previous else "") + f"New messages:\n{transcript}"
        try:
            text = generate([{"role": "system", "content": prompt}, {"role": "user", "content": body}]).strip()
        except Exception:  # the summarizer is a helper: a failing model falls back to rules
            text = ""
        if text:
            if count_tokens(text) > budget:
                text = fit_sentences(text, count_tokens, budget, keep="start")
            if text:
                return text
    return rule_summary(previous, messages, user=user, char=char, count_tokens=count_tokens, budget=budget)
