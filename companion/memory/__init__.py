"""Conversations, long-term memory and prompt assembly, in one local SQLite file.

Storage (`store.Store`): `home_dir()/companion.db`, WAL mode, schema by sqlite-utils
`Migrations` (migrations.py; a newer file is refused). Characters, conversations,
messages (tokens, engine, timing, stats), memories (with embeddings + FTS5) and rolling
summaries. A user message is committed when sent; a reply is created by start_reply,
checkpointed while it streams and finalized by finish_reply, so a crash loses nothing that
was checkpointed; reopening marks a reply whose process died as 'interrupted'.

Episodic memory: every finished user message and reply is also stored as passages
(`episodes`, `passages.py`) with an embedding and an FTS5 index, so what was said can be found
again even when no rule made a fact of it. Forgetting a fact removes the passages of the
message it came from; wiping removes every passage; transcripts stay.

Recall (`recall.py`): facts and passages together, hybrid FTS5 BM25 + cosine similarity over
all-MiniLM-L6-v2 vectors (`embed.py`, numpy port: mean pooling + L2 normalize), merged by
weighted reciprocal rank fusion (the user's words and facts count fully, the companion's
replies 0.3, values replaced since 0.15). `companion memory search` and the prompt use the same
call. Vectors live as float32 BLOBs and are searched by in-process numpy matrices per
character; sqlite-vec is not used because Python builds without `enable_load_extension`
cannot load it (this one included), and exact search is a few milliseconds of matmul.

Extraction (`extract.py`): explicit requests first (`requests.py`: "remember…", "forget…",
acted on in `session.py` with an undo, `forgetting.py`), then per sentence: what cannot be a
fact about the user's life is left out (`disclosure.gate`: questions, hypotheticals, fiction,
hearsay), precise rules (`rules.py`) give slotted facts, and the rest becomes a fact in the
user's words (`grammar.py`) when the MiniLM self-disclosure classifier (`disclosure.py`,
trained on companion/data/memory/disclosure_train.tsv) says so, when it carries a date (`dates.py`: resolved
against the day it was said) or gives a person or pet (`entities.py`) an attribute. A change
("I drive a Skoda now", "my sister moved to Lima") replaces the old value, kept in
memory_history. The chat model may propose more facts when Settings.memory_model_extraction
allows (model_candidates: each must be supported by one of the user's sentences).

Evaluation (`evaluation.py`, companion/data/memory/eval_set.jsonl and the held-out heldout.jsonl):
`companion bench memory --eval`; work_probe.jsonl (work, commute, schedule, colleagues) is measured
by hand. Keyword recall also searches related everyday words (`lexicon.py`), and for a question of
a known form ("how do I get to ...", "how long ...") the words its answer is made of (lexicon.INTENTS).

The chat core's calls:

    store = Store()                                          # or Store(path, embedder=None)
    mem = ConversationMemory(store, count_tokens=tok_count, character=None,
                             conversation_id=None, generate=None, count_messages=None,
                             user_name="User", memory_enabled=True, memory_budget=256)
    ChatSession(..., prompt_builder=mem, recorder=mem)       # PromptBuilder + ReplyRecorder
    mem.greet() -> str | None                                # first message of a new conversation
    mem.history() -> list[dict]                              # stored messages, for the chat view

  with Settings: character=settings.character, memory_enabled=settings.memory_enabled,
  memory_budget=settings.memory_token_budget. count_messages (exact templated count) makes
  the fit exact; without it a per-message overhead of 6 tokens is assumed. user_message
  indexes the message, acts on its requests (returning MemoryNotes: "remembered: …") and
  extracts facts; reply_finished asks the model for more when extract_with_model=True.

or, without the adapter:

    cid = store.ensure_character(name=None)                  # None = default character (Mira)
    conv = store.new_conversation(cid)
    messages = assemble(store, conv, count_tokens=..., budget_tokens=n_ctx - max_new,
                        user_text=text, user_name="User", memory_budget=256, generate=None)
    uid = store.add_message(conv, "user", text, tokens=n)
    rid = store.start_reply(conv, engine="browser")
    store.checkpoint_reply(rid, text_so_far)                 # before showing text_so_far
    store.finish_reply(rid, text, status="done", stats={...}, tokens=n, engine=None)
    extract_and_store_memories(store, cid, text, source_message_id=uid, generate=None)

User control (page bridge): `manage.py` (list/search/edit/pin/delete/wipe memories,
export conversations); CLI: `cli.memory_group`; benchmark: `bench.run_memory_bench()`.
"""

from companion.memory.context import Prompt, assemble, build_prompt
from companion.memory.extract import (
    Candidate,
    Change,
    extract_and_store_memories,
    remember,
    rule_candidates,
)
from companion.memory.session import ConversationMemory
from companion.memory.store import CharacterRecord, Store, default_db_path

__all__ = [
    "Candidate", "Change", "CharacterRecord", "ConversationMemory", "Prompt", "Store", "assemble",
    "build_prompt", "default_db_path", "extract_and_store_memories", "remember", "rule_candidates",
]
