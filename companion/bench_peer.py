"""Peer measurement for `companion bench`: what a user would otherwise run, on the same model in
the same run, so our figures come with ratios. `--peer-python PY`: the llama-cpp-python
bindings installed in another interpreter, the same prompt ids and the same greedy decode (CPU
by default); `--peer-llama-bench BIN`: llama.cpp's llama-bench binary (e.g. a CUDA build, all
layers on the GPU), prefill at each prompt length and decode at each context depth;
`--peer-torch-python PY`: PyTorch + transformers on the GGUF. `--vs` finds the ones installed.

Run as a script by that interpreter: it reads a JSON request on stdin, prints JSON."""

from __future__ import annotations

import json
import sys
import time


def vm_hwm_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's across exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _figures(req: dict, prefill, decode) -> dict:
    """Our bench's figures for a peer, from its two primitives: prefill(ids) -> seconds to take
    the prompt in, decode(ids, n) -> seconds for n greedy ids after the prompt. Top level at
    the request's prompt; "prefill" per size and "decode" per context depth where asked for;
    each the median of `repeats` runs after one warm-up."""
    import numpy as np

    def med(fn, *args) -> float:
        return float(np.median([fn(*args) for _ in range(req["repeats"] + 1)][1:]))

    prompt, n = req["prompt_ids"], req["decode_tokens"]
    out = {
        "prefill_tok_per_s": round(len(prompt) / med(prefill, prompt), 2),
        "decode_tok_per_s": round(n / med(decode, prompt, n), 2),
    }
    sizes = req.get("prefill_prompts") or {}
    if sizes:
        out["prefill"] = {k: round(len(ids) / med(prefill, ids), 1) for k, ids in sizes.items()}
    depths = req.get("context_prompts") or {}
    if depths:
        out["decode"] = {k: round(n / med(decode, ids, n), 2) for k, ids in depths.items()}
    return out


def _measure_llama_cpp(req: dict) -> dict:
    import numpy as np
    from llama_cpp import Llama, __version__

    longest = max([len(req["prompt_ids"]), *map(len, (req.get("prefill_prompts") or {}).values()),
                   *map(len, (req.get("context_prompts") or {}).values())])  # fmt: skip
    n_ctx = longest + req["decode_tokens"] + 8
    # one batch per prompt: llama-cpp-python keeps the scores of the last batch only
    llm = Llama(model_path=req["model"], n_ctx=n_ctx, n_batch=n_ctx, n_threads=req["threads"], verbose=False, n_gpu_layers=req.get("n_gpu_layers", 0))

    def prefill(ids: list[int]) -> float:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        return time.perf_counter() - t0

    def decode(ids: list[int], n: int) -> float:
        llm.reset()
        llm.eval(ids)
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t0 = time.perf_counter()
        for _ in range(n):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        return time.perf_counter() - t0

    return {
        "peer": f"llama.cpp (llama-cpp-python {__version__})",
        "threads": req["threads"],
        "device": "GPU" if req.get("n_gpu_layers") else "CPU",
        **_figures(req, prefill, decode),
        "peak_rss_mb": vm_hwm_mb(),
    }


def _measure_torch(req: dict) -> dict:
    """PyTorch + transformers on the same GGUF (transformers dequantizes it: f32 on the CPU, f16
    on a CUDA GPU), a KV-cached greedy loop as a user's script would write it."""
    from pathlib import Path

    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(req["threads"])
    cuda = req.get("gpu", False) and torch.cuda.is_available()
    dev = torch.device("cuda" if cuda else "cpu")
    path = Path(req["model"])
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, torch_dtype=torch.float16 if cuda else torch.float32)
    model = model.to(dev).eval()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    @torch.inference_mode()
    def run(ids: list[int]):
        out = model(torch.tensor([ids], device=dev), use_cache=True)
        sync()
        return out

    def prefill(ids: list[int]) -> float:
        t0 = time.perf_counter()
        run(ids)
        return time.perf_counter() - t0

    @torch.inference_mode()
    def decode(ids: list[int], n: int) -> float:
        out = run(ids)
        past, tok = out.past_key_values, out.logits[0, -1].argmax()
        t0 = time.perf_counter()
        for _ in range(n):
            out = model(tok.view(1, 1), past_key_values=past, use_cache=True)
            past, tok = out.past_key_values, out.logits[0, -1].argmax()
        sync()
        return time.perf_counter() - t0

    name = torch.cuda.get_device_name(0) if cuda else "CPU"
    return {
        "peer": f"PyTorch {torch.__version__} + transformers {transformers.__version__} ({name})",
        "threads": req["threads"],
        "device": "GPU" if cuda else "CPU",
        **_figures(req, prefill, decode),
        "peak_rss_mb": vm_hwm_mb(),
    }


PEERS = {"llama-cpp-python": _measure_llama_cpp, "torch": _measure_torch}
# what `python -c "import X"` must find in the peer's interpreter, and how a user gets it
NEEDS = {"llama-cpp-python": (("llama_cpp",), "pip install 'companion[bench]' (llama-cpp-python)"),
         "torch": (("torch", "transformers", "accelerate"), "pip install torch transformers accelerate")}  # fmt: skip
LABELS = {"llama-cpp-python": "llama.cpp (llama-cpp-python)", "torch": "PyTorch + transformers"}


def has_modules(python: str, modules: tuple[str, ...]) -> str | None:
    """None if `python` can import every module, else what is missing (without importing them
    here: a peer's packages stay in its own process)."""
    import subprocess

    code = "import importlib.util as u, sys; m = [n for n in sys.argv[1:] if u.find_spec(n) is None]; print(' '.join(m))"
    try:
        out = subprocess.run([python, "-c", code, *modules], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{python} did not run: {exc}"
    missing = out.stdout.strip()
    if out.returncode != 0:
        return f"{python} failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
    return f"{python} has no {missing}" if missing else None


def run_peer(
    python: str, model_path: str, prompt_ids: list[int], decode_tokens: int, repeats: int, threads: int,
    *, kind: str = "llama-cpp-python", prefill_prompts: dict[str, list[int]] | None = None,
    context_prompts: dict[str, list[int]] | None = None, gpu: bool = False,
) -> dict:
    """Measure a peer (`kind`: llama-cpp-python or torch) with the interpreter `python` that has
    it installed; errors come back as {"error": ...}."""
    import subprocess

    req = {"kind": kind, "model": model_path, "prompt_ids": prompt_ids, "decode_tokens": decode_tokens, "repeats": repeats,
           "threads": threads, "prefill_prompts": prefill_prompts or {}, "context_prompts": context_prompts or {},
           "gpu": gpu, "n_gpu_layers": 99 if gpu else 0}  # fmt: skip
    try:
        out = subprocess.run([python, __file__], input=json.dumps(req), capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"peer": LABELS[kind], "error": f"peer did not run: {exc}"}
    if out.returncode != 0:
        return {"peer": LABELS[kind], "error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_llama_bench(
    binary: str, model_path: str, prompt_tokens: int, prefill_sizes: list[int], contexts: list[int], decode_tokens: int,
    repeats: int, gpu_layers: int = 99,
) -> dict:
    """llama.cpp's own llama-bench on the same model (GPU offload by default): prefill at
    prefill_sizes and prompt_tokens (pp), decode of decode_tokens at each context (tg with
    depth -d). Same keys as our bench ("prefill", "decode", the top-level pair at
    prompt_tokens); errors come back as {"error": ...}."""
    import subprocess

    sizes = sorted({*prefill_sizes, prompt_tokens})
    depths = sorted({*contexts, prompt_tokens})
    base = [binary, "-m", model_path, "-r", str(max(1, repeats)), "-o", "json", "-ngl", str(gpu_layers)]
    rows: list[dict] = []
    for args in (["-p", ",".join(map(str, sizes)), "-n", "0"], ["-p", "0", "-n", str(decode_tokens), "-d", ",".join(map(str, depths))]):
        try:
            out = subprocess.run(base + args, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"peer": "llama.cpp llama-bench", "error": f"llama-bench did not run: {exc}"}
        if out.returncode != 0:
            return {"peer": "llama.cpp llama-bench", "error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
        rows += json.loads(out.stdout)
    prefill = {str(r["n_prompt"]): round(float(r["avg_ts"]), 1) for r in rows if r.get("n_gen", 0) == 0 and r.get("n_prompt")}
    decode = {str(r.get("n_depth", 0)): round(float(r["avg_ts"]), 2) for r in rows if r.get("n_prompt", 0) == 0 and r.get("n_gen")}
    first = rows[0] if rows else {}
    return {
        "peer": f"llama.cpp llama-bench (build {first.get('build_commit', '?')}, {first.get('backends', '?')}, {first.get('gpu_info', '')})",
        "n_gpu_layers": gpu_layers,
        "prefill": {str(n): prefill[str(n)] for n in prefill_sizes if str(n) in prefill},
        "decode": {str(c): decode[str(c)] for c in contexts if str(c) in decode},
        "prefill_tok_per_s": prefill.get(str(prompt_tokens), 0.0),
        "decode_tok_per_s": decode.get(str(prompt_tokens), 0.0),
    }


if __name__ == "__main__":
    request = json.loads(sys.stdin.read())
    print(json.dumps(PEERS[request.get("kind", "llama-cpp-python")](request)))
