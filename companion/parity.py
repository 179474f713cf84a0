"""Teacher-forced parity against a golden file of llama.cpp outputs.

For each golden prompt the engine is fed the golden prompt ids, then each golden generated id
in turn, and at every step its logits are compared with llama.cpp's top-5. Near-ties make
free-running comparisons flaky, so top-1 agreement is only required where llama.cpp's own
top-1/top-2 margin is clear.

What else must hold depends on the weights the golden file was made on (its "weights" field):
- "f32": every 2-D weight dequantized to F32 (scripts/make_golden.py --f32). llama.cpp then
  rounds nothing but its f16 KV cache, so an exact computation agrees with it closely: every
  golden top-5 logit within F32_LOGIT_LIMIT. This is the referee that proves exactness.
- "quantized" (also files without the field): llama.cpp rounds activations to 8 bits before
  each quantized matrix product, so its logits differ from an exact computation on the same
  weights; instead of a logit bound, the distribution over the golden top-5 must match:
  KL(golden || ours) over those ids, renormalised, at most KL_LIMIT at every step, and top-1
  must agree where the golden margin is at least CLEAR_MARGIN_QUANTIZED.

The quantized bounds come from measurements (2026-11-30) of the numpy reference, proven exact
by the F32 goldens (SmolLM2 135M <= 0.023, Gemma 3 270M <= 0.031 on every golden top-5 logit,
identical greedy sequences), against quantized goldens: 345 steps (SmolLM2 Q4_1 from an
AVX-512 and an AVX2 build of llama.cpp, Gemma 3 270M Q4_K_M). The KL over the golden top-5 was
at most 0.059 (99th percentile 0.040), logits differed by up to 1.60, and the golden top-1
minus another top-5 logit moved by up to 1.40 (99th percentile 1.06); top-1 disagreed on 2
steps, both with golden margins under 0.75. Hence KL_LIMIT 0.1 and CLEAR_MARGIN_QUANTIZED 1.0;
a broken engine (one layer's FFN zeroed) scores a KL far above (tests/test_reference.py).

Golden-file conventions (scripts/make_golden.py writes them): a prompt's `prompt_token_ids` are
llama.cpp's tokenize(text, add_bos=True, special=True), i.e. with BOS where the model adds one;
`raw_tokenization` ids are without BOS; a base model's prompt has `formatted_prompt` as plain
text (no template) and no `user` field."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from companion.engines.base import Engine
from companion.errors import CompanionError
from companion.model.chat_template import ChatTemplate
from companion.model.tokenizer import Tokenizer

CLEAR_MARGIN = 0.25  # f32 goldens: top-1 minus top-2 logit at or above which top-1 must agree
CLEAR_MARGIN_QUANTIZED = 1.0  # the same for quantized goldens (measured swings, above)
MAX_LOGIT_DIFF = 1.0  # quantized goldens: reported (llama.cpp's 8-bit activations), not bounded
F32_LOGIT_LIMIT = 0.05  # f32 goldens: largest |engine - golden| logit over the golden top-5 ids
F16_LOGIT_LIMIT = 0.5  # the same for engines with f16 inner products and KV cache
KL_LIMIT = 0.1  # quantized goldens: largest KL(golden || engine) over the golden top-5 (nats)


def golden_weights(golden: dict[str, Any]) -> str:
    """"f32" or "quantized": what the golden file was made on (older files: quantized)."""
    w = str(golden.get("weights", "quantized"))
    if w not in ("f32", "quantized"):
        raise CompanionError(f"golden file has weights={w!r}: expected 'f32' or 'quantized'")
    return w


def top5_kl(ref: list[tuple[int, float]], logits: np.ndarray) -> float:
    """KL(p || q) in nats, p and q the softmax of the golden and the engine's logits over the
    golden top-5 ids (each renormalised over those ids)."""
    ids = [t for t, _ in ref]
    a = np.array([v for _, v in ref], np.float64)  # (5,)
    b = np.asarray(logits, np.float64)[ids]  # (5,)
    p = np.exp(a - a.max())
    p /= p.sum()
    q = np.exp(b - b.max())
    q /= q.sum()
    return float(np.sum(p * (np.log(p) - np.log(q))))


class PromptReport(BaseModel):
    """Parity of one golden prompt."""

    index: int
    tokenization_match: bool  # formatted_prompt tokenizes to the golden prompt ids
    template_match: bool | None  # our chat template renders the golden formatted_prompt
    steps: int  # generated positions compared
    clear_steps: int  # steps whose golden margin >= the clear margin (CLEAR_MARGIN, or _QUANTIZED)
    top1_agree_clear: int  # of those, where our top-1 equals the golden top-1
    top1_agree_all: int  # over every step
    max_abs_logit_diff: float  # over the golden top-5 ids of every step
    max_kl_top5: float  # largest KL(golden || engine) over the golden top-5 of a step (nats)
    greedy_match_len: int  # leading golden tokens our greedy decoding reproduces
    seconds: float
    weights: str = "quantized"  # what the golden was made on: "f32" or "quantized"
    logit_limit: float | None = None  # bound on max_abs_logit_diff (f32 goldens), else None
    kl_limit: float | None = None  # bound on max_kl_top5 (quantized goldens), else None

    @property
    def ok(self) -> bool:
        return (
            self.tokenization_match
            and self.top1_agree_clear == self.clear_steps
            and (self.logit_limit is None or self.max_abs_logit_diff <= self.logit_limit)
            and (self.kl_limit is None or self.max_kl_top5 <= self.kl_limit)
        )


class ParityReport(BaseModel):
    """Parity of one engine against one golden file."""

    engine: str
    adapter: str
    golden: str
    weights: str  # "f32" | "quantized": the golden file's weights, which choose the bounds
    raw_tokenizations: int
    raw_tokenization_mismatches: list[str]
    prompts: list[PromptReport]
    tokens_per_s: float  # teacher-forced positions evaluated per second
    passed: bool


def load_golden(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError as exc:
        raise CompanionError(f"golden file not found: {p}") from exc
    except ValueError as exc:
        raise CompanionError(f"golden file {p} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise CompanionError(f"golden file {p} has no 'prompts' list")
    return data


def check_prompt(
    engine: Engine,
    tokenizer: Tokenizer,
    template: ChatTemplate | None,
    index: int,
    g: dict[str, Any],
    weights: str = "quantized",
    f16: bool = False,
) -> PromptReport:
    """Teacher-forced comparison of one golden prompt, bounded as the golden's weights say
    (f16: the engine runs f16 inner products, so an f32 golden allows F16_LOGIT_LIMIT)."""
    try:
        prompt_ids = [int(i) for i in g["prompt_token_ids"]]
        gen_ids = [int(i) for i in g["generated_token_ids"]]
        top5 = g["top5_each_generated_position"]
    except (KeyError, TypeError, ValueError) as exc:
        raise CompanionError(f"golden prompt {index} lacks a field: {exc}") from exc
    t0 = time.perf_counter()
    tok_ok = True
    tmpl_ok: bool | None = None
    if g.get("formatted_prompt") is not None:
        tok_ok = tokenizer.encode(g["formatted_prompt"], parse_special=True, add_bos=True) == prompt_ids
        if template is not None and "user" in g:
            msgs = ([{"role": "system", "content": g["system"]}] if g.get("system") else []) + [
                {"role": "user", "content": g["user"]}
            ]
            tmpl_ok = template.render(msgs) == g["formatted_prompt"]
    engine.reset()
    logits = engine.eval(prompt_ids)  # (V,)
    clear = agree_clear = agree_all = 0
    max_diff = max_kl = 0.0
    margin = CLEAR_MARGIN if weights == "f32" else CLEAR_MARGIN_QUANTIZED
    greedy_len: int | None = None
    steps = min(len(gen_ids), len(top5))
    for s in range(steps):
        ref = [(int(t), float(v)) for t, v in top5[s]]
        ours_top1 = int(np.argmax(logits))
        max_diff = max(max_diff, max(abs(float(logits[t]) - v) for t, v in ref))
        max_kl = max(max_kl, top5_kl(ref, logits))
        agree_all += ours_top1 == ref[0][0]
        if len(ref) < 2 or ref[0][1] - ref[1][1] >= margin:
            clear += 1
            agree_clear += ours_top1 == ref[0][0]
        if greedy_len is None and ours_top1 != gen_ids[s]:
            greedy_len = s
        if s + 1 < steps:
            logits = engine.eval([gen_ids[s]])
    return PromptReport(
        index=index,
        tokenization_match=tok_ok,
        template_match=tmpl_ok,
        steps=steps,
        clear_steps=clear,
        top1_agree_clear=agree_clear,
        top1_agree_all=agree_all,
        max_abs_logit_diff=round(max_diff, 5),
        max_kl_top5=round(max_kl, 6),
        greedy_match_len=steps if greedy_len is None else greedy_len,
        seconds=round(time.perf_counter() - t0, 3),
        weights=weights,
        logit_limit=(F16_LOGIT_LIMIT if f16 else F32_LOGIT_LIMIT) if weights == "f32" else None,
        kl_limit=KL_LIMIT if weights == "quantized" else None,
    )


def run_parity(
    engine: Engine,
    tokenizer: Tokenizer,
    golden_path: str | Path,
    template: ChatTemplate | None = None,
    f16: bool = False,
) -> ParityReport:
    """Check engine + tokenizer against every prompt and raw tokenization of a golden file
    (f16: the engine's kernels use f16 inner products; see check_prompt)."""
    golden = load_golden(golden_path)
    weights = golden_weights(golden)
    mismatches = []
    raw = golden.get("raw_tokenization") or []
    for r in raw:
        want = r.get("ids_parse_special_true")
        if want is not None and tokenizer.encode(r["text"], parse_special=True) != want:
            mismatches.append(r["text"])
    reports = []
    t0 = time.perf_counter()
    positions = 0
    for i, g in enumerate(golden["prompts"]):
        rep = check_prompt(engine, tokenizer, template, i, g, weights, f16)
        positions += len(g["prompt_token_ids"]) + rep.steps
        reports.append(rep)
    elapsed = time.perf_counter() - t0
    return ParityReport(
        engine=engine.name,
        adapter=engine.adapter,
        golden=str(golden_path),
        weights=weights,
        raw_tokenizations=len(raw),
        raw_tokenization_mismatches=mismatches,
        prompts=reports,
        tokens_per_s=round(positions / elapsed, 2) if elapsed > 0 else 0.0,
        passed=not mismatches and all(r.ok for r in reports),
    )
