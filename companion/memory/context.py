"""Prompt assembly: persona + pinned facts + recalled memories + rolling summary + recent turns,
fitted to the token budget (context length minus the tokens reserved for the reply).

Nothing is ever cut mid-token: what does not fit is left out whole (memories, old turns)
or cut at a word boundary (an oversized persona or message), and the system prompt is
always the first message. When the turns no longer fit, the oldest ones are folded into
the rolling summary (stored in the database) so that the next turns do not re-trigger it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from companion.memory.dates import describe, said_on
from companion.memory.recall import recall
from companion.memory.summarize import summarize
from companion.persona.card import render
from companion.persona.prompt import persona_prompt

if TYPE_CHECKING:
    from companion.memory.store import Store

CountTokens = Callable[[str], int]
Generate = Callable[[list[dict[str, str]]], str]
MESSAGE_OVERHEAD = 6  # template tokens around one message (ChatML: <|im_start|>role\n ... <|im_end|>\n)
TAIL_AFTER_FOLD = 0.6  # after summarizing, recent turns use at most this share of their budget
MAX_FOLDS = 8  # exact-count retries before giving up on folding more turns


@dataclass
class Prompt:
    """The assembled messages and what went into them."""

    messages: list[dict[str, str]]
    tokens: int  # estimated prompt tokens (exact when count_messages was given)
    memories: list[dict[str, Any]] = field(default_factory=list)  # pinned + recalled, as injected
    summary: str | None = None
    turns: int = 0  # recent messages included verbatim


def fit_words(text: str, count_tokens: CountTokens, budget: int, keep: str = "start") -> str:
    """The longest whole-word prefix (or suffix) of text within budget tokens."""
    if count_tokens(text) <= budget:
        return text
    words = text.split(" ")
    lo, hi = 0, len(words)
    while lo < hi:  # largest n whose cut fits
        mid = (lo + hi + 1) // 2
        cut = " ".join(words[:mid]) if keep == "start" else " ".join(words[-mid:])
        if count_tokens(cut + " …") <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return ""
    return " ".join(words[:lo]) + " …" if keep == "start" else "… " + " ".join(words[-lo:])


def memory_line(m: dict[str, Any]) -> str:
    """A recalled item as the prompt (and `companion memory search`) shows it: a fact as it is
    stored, a past message as who said it when ("On 2 March 2026 the user said: "…"")."""
    if m.get("source") != "message":
        return m["text"]
    who = "the user" if m["role"] == "user" else "you"
    return f'On {describe(said_on(m["said_at"]))} {who} said: "{m["text"]}"'


def memory_section(
    store: Store, character_id: int, query: str, *, count_tokens: CountTokens, budget: int, limit: int = 12,
    exclude_messages: Collection[int] = (),
) -> tuple[str, list[dict[str, Any]]]:
    """Pinned memories, then the most relevant recalled facts and past messages (not those
    already in the prompt, nor those a newer fact replaced), as whole lines within budget."""
    if budget <= 0:
        return "", []
    pinned = sorted((m for m in store.memories(character_id) if m["pinned"]), key=lambda m: m["id"])
    recalled = recall(store, character_id, query, limit=limit, exclude_messages=exclude_messages) if query.strip() else []
    header = "What you remember about the user:"
    used = count_tokens(header)
    lines, chosen, seen = [], [], set()
    for m in [*pinned, *recalled]:
        key = (m.get("source", "fact"), m["id"])
        if key in seen or m.get("superseded"):
            continue
        seen.add(key)
        line = f"- {memory_line(m)}"
        cost = count_tokens(line) + 1
        if used + cost > budget:
            continue  # a smaller one further down may still fit
        used += cost
        lines.append(line)
        chosen.append(m)
    return (header + "\n" + "\n".join(lines) if lines else ""), chosen


def build_prompt(
    store: Store,
    conversation_id: int,
    *,
    count_tokens: CountTokens,
    budget_tokens: int,
    user_text: str | None = None,
    user_name: str = "User",
    memory_enabled: bool = True,
    memory_budget: int = 256,
    generate: Generate | None = None,
    count_messages: Callable[[list[dict[str, str]]], int] | None = None,
    summary_budget: int | None = None,
    message_overhead: int = MESSAGE_OVERHEAD,
) -> Prompt:
    """Assemble the prompt for the next reply in a stored conversation.

    user_text: the new user message if it is not stored yet (it is appended last).
    budget_tokens: context length minus tokens reserved for the reply.
    count_messages: exact token count of rendered messages (chat template), checked last.
    """
    conv = store.conversation(conversation_id)
    record = store.character(conv["character_id"])
    char = record.card
    cname = char.display_name
    summary_budget = summary_budget or max(48, min(300, budget_tokens // 8))

    # 1. persona: always present, shortened (examples first, then words) only if it would
    #    take more than half the budget
    persona_cap = max(16, budget_tokens // 2)
    persona = persona_prompt(char, user_name)
    if count_tokens(persona) > persona_cap:
        persona = persona_prompt(char, user_name, examples=False)
    persona = fit_words(persona, count_tokens, persona_cap)

    # 2. the turns: everything since the summary, plus the new message
    history = [
        {"id": m["id"], "role": m["role"], "content": m["content"]}
        for m in store.messages(conversation_id)
        if m["status"] != "streaming" and m["role"] in ("user", "assistant") and m["content"].strip()
    ]
    if user_text is not None:
        history.append({"id": None, "role": "user", "content": user_text})
    query = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")

    summary_row = store.summary(conversation_id)
    summary = summary_row["text"] if summary_row else None
    upto = summary_row["upto_message_id"] if summary_row else 0

    # 3. memories (past messages that are among the turns are not recalled twice)
    mem_text, mems = "", []  # type: tuple[str, list[dict[str, Any]]]
    if memory_enabled:
        mem_text, mems = memory_section(
            store, record.id, query, count_tokens=count_tokens,
            budget=min(memory_budget, max(0, budget_tokens // 4)),
            exclude_messages={m["id"] for m in history if m["id"] is not None and m["id"] > upto},
        )
    post = render(char.post_history_instructions, char, user_name).strip()

    def system_text(summary: str | None) -> str:
        parts = [persona, mem_text]
        if summary:
            parts.append(f"Summary of the conversation so far: {summary}")
        return "\n\n".join(p for p in parts if p)

    def cost(text: str) -> int:
        return count_tokens(text) + message_overhead

    def assemble_messages(tail: Sequence[dict[str, Any]], summary: str | None) -> list[dict[str, str]]:
        msgs = [{"role": "system", "content": system_text(summary)}]
        msgs += [{"role": m["role"], "content": m["content"]} for m in tail]
        if post:
            msgs.append({"role": "system", "content": post})
        return msgs

    tail = [m for m in history if m["id"] is None or m["id"] > upto]
    fixed = cost(system_text(None)) + (cost(post) if post else 0)
    turn_budget = budget_tokens - fixed - summary_budget - message_overhead

    def tail_cost(t: Sequence[dict[str, Any]]) -> int:
        return sum(cost(m["content"]) for m in t)

    def fold(n: int) -> None:
        """Fold the n oldest tail messages into the rolling summary (stored)."""
        nonlocal tail, summary, upto
        folded, tail = tail[:n], tail[n:]
        summary = summarize(summary, folded, user=user_name, char=cname, count_tokens=count_tokens,
                            budget=summary_budget, generate=generate)
        upto = folded[-1]["id"]
        store.set_summary(conversation_id, summary, upto, count_tokens(summary))

    # 4. fold old turns into the summary when they no longer fit
    if tail_cost(tail) > turn_budget and len(tail) > 1:
        target = int(turn_budget * TAIL_AFTER_FOLD)
        n = 0
        while n < len(tail) - 1 and tail_cost(tail[n:]) > target:  # the newest message always stays
            n += 1
        if n > 0:
            fold(n)
    # 5. a single message larger than everything left: keep its end, cut at a word boundary
    if tail and tail_cost(tail) > turn_budget:
        last = tail[-1]
        room = max(1, turn_budget - tail_cost(tail[:-1]) - message_overhead)
        tail = [*tail[:-1], {**last, "content": fit_words(last["content"], count_tokens, room, keep="end")}]

    messages = assemble_messages(tail, summary)
    tokens = sum(cost(m["content"]) for m in messages)
    if count_messages is not None:
        tokens = count_messages(messages)
        folds = 0
        while tokens > budget_tokens and folds < MAX_FOLDS and len(tail) > 1 and tail[0]["id"] is not None:
            fold(1)  # the estimate was short: fold one more turn and measure again
            folds += 1
            messages = assemble_messages(tail, summary)
            tokens = count_messages(messages)
    return Prompt(messages=messages, tokens=tokens, memories=mems, summary=summary, turns=len(tail))


def assemble(store: Store, conversation_id: int, **kwargs: Any) -> list[dict[str, str]]:
    """The chat messages for the next reply (see build_prompt for the arguments)."""
    return build_prompt(store, conversation_id, **kwargs).messages
