"""Peer measurement for `companion bench`: llama.cpp on the same model in the same run, so our
figures come with ratios. `--peer-python PY`: the llama-cpp-python bindings installed in another
interpreter, the same prompt ids and the same greedy decode (CPU by default);
`--peer-llama-bench BIN`: llama.cpp's llama-bench binary (e.g. a CUDA build, all layers on the
GPU), prefill at each prompt length and decode at each context depth.

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


def _measure(req: dict) -> dict:
    import numpy as np
    from llama_cpp import Llama, __version__

    llm = Llama(model_path=req["model"], n_ctx=2048, n_batch=512, n_threads=req["threads"], verbose=False, n_gpu_layers=req.get("n_gpu_layers", 0))
    prompt = req["prompt_ids"]
    prefill, decode = [], []
    for r in range(req["repeats"] + 1):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        t1 = time.perf_counter()
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t2 = time.perf_counter()
        for _ in range(req["decode_tokens"]):
            llm.eval([tok])
            tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t3 = time.perf_counter()
        if r:
            prefill.append(t1 - t0)
            decode.append(t3 - t2)
    return {
        "peer": f"llama.cpp (llama-cpp-python {__version__})",
        "threads": req["threads"],
        "prefill_tok_per_s": round(len(prompt) / float(np.median(prefill)), 2),
        "decode_tok_per_s": round(req["decode_tokens"] / float(np.median(decode)), 2),
        "peak_rss_mb": vm_hwm_mb(),
    }


def run_peer(python: str, model_path: str, prompt_ids: list[int], decode_tokens: int, repeats: int, threads: int) -> dict:
    """Measure llama.cpp with another interpreter; errors come back as {"error": ...}."""
    import subprocess

    req = {"model": model_path, "prompt_ids": prompt_ids, "decode_tokens": decode_tokens, "repeats": repeats, "threads": threads}
    try:
        out = subprocess.run([python, __file__], input=json.dumps(req), capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"peer did not run: {exc}"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout)


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
            return {"error": f"llama-bench did not run: {exc}"}
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]}
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
    print(json.dumps(_measure(json.loads(sys.stdin.read()))))
