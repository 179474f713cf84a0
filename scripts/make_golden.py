#!/usr/bin/env python3
"""Make llama.cpp golden files (the parity referee's data). Not shipped in the package.

Golden generation needs llama-cpp-python built from its sdist in a venv of its own (CPU only;
~10+ minutes on 2 cores), which holds numpy and jinja2 too:

    python3 -m venv /tmp/llamacpp
    CMAKE_ARGS="-DGGML_NATIVE=ON" /tmp/llamacpp/bin/pip install llama-cpp-python==0.3.36 --no-binary llama-cpp-python

Steps (the f32 and tiny steps need the `gguf` package: run them with the project's .venv):

    .venv/bin/python scripts/make_golden.py f32 MODEL.gguf MODEL-f32.gguf     # dequantize 2-D weights to F32
    .venv/bin/python scripts/make_golden.py tiny /tmp/tiny                    # companion.testing.TINY_ARCHS
    /tmp/llamacpp/bin/python scripts/make_golden.py golden MODEL.gguf OUT.json --prompts smollm2 [--weights f32] [--kv f32]

Prompt sets: smollm2 (the chat prompts of shared/golden plus a held-out code prompt), long (one
chat prompt of more than 1,500 tokens), gemma3 (base-model completions and hard tokenizer
strings), tiny (token-id prompts for the random models, longer than their sliding window).

Conventions (companion/parity.py reads them): `prompt_token_ids` are llama.cpp's
tokenize(formatted_prompt, add_bos=True, special=True), i.e. with BOS where the model adds one;
`raw_tokenization` ids are without BOS; a base model's `formatted_prompt` is the plain text
and has no `user`; `weights` says what the file was made on ("f32" or "quantized"), which
decides the parity bounds; `kv_cache` is llama.cpp's KV cache type (f32 for F32 goldens: no
rounding anywhere in llama.cpp then). Greedy argmax over the raw logits, no penalties; the top-5 at every
generated position; stop after the end-of-generation token (included) or max_tokens.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

SYSTEM = "You are a helpful assistant."
CHAT = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Count from one to ten.",
    "Write a Python function that returns the n-th Fibonacci number.",  # held out (not in shared/golden)
]
BASE = [
    "The capital of France is",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "Once upon a time, in a small village by the sea,",
    "Les trois plus grandes villes de France sont",
    "Q: What is 12 times 7?\nA:",
]
HARD_STRINGS = [
    "Hello, world!", "  leading spaces\n\ttab", "日本語のテキスト 🙂", "def f(x):\n    return x**2", " Hello",
    "12345 apples, 3.14159", "naïve café – “quotes” …", "   \n\n  \t end  ", "I'm sure they'll've done it",
    "🙂🙃👍🏽 emoji", "Ünïcödé ẞ straße", "x = [1,2,3]; print(sum(x))  # 6", "a\u00a0b\u200bc", "    four spaces",
    "line\r\nwindows\rmac", "\n\n\n\n\n", "\t\t\ttabs", "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag", "Привет, мир! Ελληνικά. مرحبا",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<bos>text<eos>",
    "<b>bold</b> <div>html</div>", "a" * 40, "  two  spaces  between  ", "ﬁ ligature, ½ fraction, Ⅻ numeral",
]  # fmt: skip
SMOLLM2_STRINGS = [
    "Hello, world!", "  leading spaces\n\ttab", "日本語のテキスト 🙂", "def f(x):\n    return x**2", "Hello world",
    " Hello", "12345 apples, 3.14159", "<|im_start|>user\nHi<|im_end|>\n", "naïve café – “quotes” …",
    "   \n\n  \t end  ", "I'm sure they'll've done it", "🙂🙃👍🏽 emoji", "Ünïcödé ẞ straße",
    "x = [1,2,3]; print(sum(x))  # 6",
]  # fmt: skip


def long_document() -> str:
    """About 2,000 tokens of plain English: Python's own license text (stable, on every machine)."""
    import sysconfig

    for cand in (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt", Path(sys.base_prefix) / "LICENSE.txt"):
        if cand.is_file():
            return cand.read_text(encoding="utf-8")[:9000]
    raise SystemExit("no LICENSE.txt found in this Python's stdlib: pass another long text")


# ----------------------------------------------------------------------------- f32 / tiny (gguf)


def cmd_f32(src: Path, dst: Path) -> None:
    """Copy a GGUF with every 2-D weight dequantized to F32 (gguf.quants.dequantize)."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(src)
    arch = r.fields["general.architecture"].contents()
    w = gguf.GGUFWriter(str(dst), arch)
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        vtype = gguf.GGUFValueType(int(f.types[0]))
        if vtype == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, f.contents(), vtype, sub_type=gguf.GGUFValueType(int(f.types[-1])))
        else:
            w.add_key_value(key, f.contents(), vtype)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)  # (overrides general.file_type)
    for t in r.tensors:
        shape = tuple(int(x) for x in reversed([int(n) for n in t.shape]))  # numpy order
        qt = gguf.GGMLQuantizationType(int(t.tensor_type))
        if qt == gguf.GGMLQuantizationType.F32:
            data = np.asarray(t.data, np.float32).reshape(shape)
        else:
            data = gguf.quants.dequantize(t.data, qt).astype(np.float32).reshape(shape)
        w.add_tensor(t.name, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {dst} ({dst.stat().st_size:,} bytes)")


def cmd_tiny(out: Path) -> None:
    from companion.testing import TINY_ARCHS, write_tiny_arch

    out.mkdir(parents=True, exist_ok=True)
    for kind in TINY_ARCHS:
        p = write_tiny_arch(out / f"tiny-{kind}.gguf", kind)
        print(p, hashlib.sha256(p.read_bytes()).hexdigest())


# ----------------------------------------------------------------------------- golden (llama_cpp)


def sha256(path: Path) -> str:
    from companion.model.packaged import file_sha256

    return file_sha256(path)


def render_chat(template: str, messages: list[dict[str, str]], bos: str, eos: str) -> str:
    """The chat template rendered as companion.model.chat_template renders it."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    return env.from_string(template).render(messages=messages, add_generation_prompt=True, bos_token=bos, eos_token=eos)


def cmd_golden(model_path: Path, out: Path, prompts: str, weights: str, max_tokens: int, n_ctx: int, kv: str) -> None:
    import llama_cpp
    import numpy as np
    from llama_cpp import Llama

    # An F32 KV cache keeps llama.cpp's attention in f32 (with its default F16 cache, q, k, v
    # and the probabilities are rounded to f16: 0.052 of logit drift at 2,500 tokens, measured)
    types = {"f32": llama_cpp.GGML_TYPE_F32, "f16": llama_cpp.GGML_TYPE_F16}[kv]
    llm = Llama(str(model_path), n_ctx=n_ctx, n_batch=512, n_threads=2, logits_all=False, verbose=False, seed=0,
                type_k=types, type_v=types)  # fmt: skip
    n_vocab = llm.n_vocab()
    meta = llm.metadata
    template = meta.get("tokenizer.chat_template")
    eos = llm.token_eos()
    bos = llm.token_bos()

    def text_of(i: int) -> str:
        return llm.detokenize([i], special=True).decode("utf-8", errors="replace")

    eog = {eos}
    for i in range(n_vocab):  # llama.cpp's end-of-generation set
        if llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), i):
            eog.add(i)

    def run(prompt_ids: list[int]) -> dict:
        llm.reset()
        llm.eval(prompt_ids)
        gen: list[int] = []
        tops = []
        stats = None
        for _ in range(max_tokens):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,)).astype(np.float32)
            if stats is None:
                stats = {k: float(getattr(logits, k)()) for k in ("mean", "std", "min", "max")}
            order = np.argsort(-logits, kind="stable")[:5]
            tops.append([[int(t), float(logits[t])] for t in order])
            tok = int(order[0])
            gen.append(tok)
            if tok in eog:
                break
            llm.eval([tok])
        return {
            "prompt_token_ids": prompt_ids, "n_prompt_tokens": len(prompt_ids), "generated_token_ids": gen,
            "generated_text": llm.detokenize(gen).decode("utf-8", errors="replace"), "stopped_at_eos": gen[-1] in eog,
            "top5_first_position": tops[0], "top5_each_generated_position": tops, "first_position_logits_stats": stats,
        }  # fmt: skip

    records = []
    strings: list[str] = []
    if prompts in ("smollm2", "long"):
        if not template:
            raise SystemExit(f"{model_path} has no chat template: use a base-model prompt set")
        users = CHAT if prompts == "smollm2" else [
            "Read this text and answer the question after it.\n\n" + long_document()
            + "\n\nQuestion: which organisation holds the copyright of Python, according to this text?"
        ]  # fmt: skip
        for user in users:
            msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
            formatted = render_chat(template, msgs, text_of(bos), text_of(eos))
            ids = llm.tokenize(formatted.encode(), add_bos=True, special=True)
            records.append({"user": user, "system": SYSTEM, "formatted_prompt": formatted, **run(ids)})
        strings = SMOLLM2_STRINGS
    elif prompts == "gemma3":
        for text in BASE:
            ids = llm.tokenize(text.encode(), add_bos=True, special=True)
            records.append({"formatted_prompt": text, **run(ids)})
        strings = HARD_STRINGS
    elif prompts == "tiny":
        rng = np.random.default_rng(5)
        for n in (3, 20, 37):  # beyond the tiny gemma3's sliding window of 8
            ids = [int(i) for i in rng.integers(3, n_vocab, n)]
            records.append({"formatted_prompt": None, **run(ids)})
    else:
        raise SystemExit(f"unknown prompt set {prompts!r}")
    raw = []
    for text in strings:
        b = text.encode()
        no = llm.tokenize(b, add_bos=False, special=False)
        yes = llm.tokenize(b, add_bos=False, special=True)
        raw.append({"text": text, "ids_parse_special_false": no, "ids_parse_special_true": yes,
                    "pieces": [text_of(i) for i in yes]})  # fmt: skip
    golden = {
        "llama_cpp_python_version": llama_cpp.__version__,
        "build": "pip install from sdist, CMAKE_ARGS=-DGGML_NATIVE=ON, CPU backend only",
        "model_file": model_path.name,
        "model_size_bytes": model_path.stat().st_size,
        "model_sha256": sha256(model_path),
        "weights": weights,
        "kv_cache": kv,
        "settings": f"n_ctx={n_ctx} n_batch=512 n_threads=2, {kv} KV cache, CPU, greedy argmax over raw logits (no repetition "
                    f"penalty), stop at an end-of-generation id (token included) or after {max_tokens} tokens",
        "conventions": "prompt_token_ids = tokenize(formatted_prompt, add_bos=True, special=True); raw_tokenization "
                       "ids without BOS; base-model prompts: formatted_prompt is plain text",
        "chat_template": template,
        "eos_token_id": eos,
        "bos_token_id": bos,
        "eog_token_ids": sorted(eog),
        "prompts": records,
        "raw_tokenization": raw,
        "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode(),
    }  # fmt: skip
    out.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}: {len(records)} prompts, {sum(len(r['generated_token_ids']) for r in records)} steps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("f32", help="dequantize every 2-D weight of a GGUF to F32")
    a.add_argument("src", type=Path)
    a.add_argument("dst", type=Path)
    a = sub.add_parser("tiny", help="write companion.testing.TINY_ARCHS models")
    a.add_argument("out", type=Path)
    a = sub.add_parser("golden", help="run llama.cpp and write a golden JSON")
    a.add_argument("model", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--prompts", required=True, choices=["smollm2", "long", "gemma3", "tiny"])
    a.add_argument("--weights", default="quantized", choices=["quantized", "f32"])
    a.add_argument("--max-tokens", type=int, default=32)
    a.add_argument("--n-ctx", type=int, default=4096)
    a.add_argument("--kv", choices=["f32", "f16"], help="KV cache type (default: f32 for --weights f32, else llama.cpp's f16)")
    args = ap.parse_args()
    if args.cmd == "f32":
        cmd_f32(args.src, args.dst)
    elif args.cmd == "tiny":
        cmd_tiny(args.out)
    else:
        kv = args.kv or ("f32" if args.weights == "f32" else "f16")
        cmd_golden(args.model, args.out, args.prompts, args.weights, args.max_tokens, args.n_ctx, kv)


if __name__ == "__main__":
    main()
