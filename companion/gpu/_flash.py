"""Flash-decoding attention in a plan: for the one token of a decode step on GPUs, the keys of
each head are split over S workgroups (shaders/attention_flash.wgsl) and the partial results
are merged inside the output projection (shaders/matmul_attn.wgsl), so a long context adds
parallel workgroups instead of a longer serial walk, and the split costs no extra dispatch."""

from __future__ import annotations

from companion.gpu.plan import Dispatch

ENABLED = True  # False: the plan uses the earlier kernels (for before/after measurements)
FLASH_S = 16  # splits per head: 16 x 9 heads fill the GPU from ~1k keys on; short contexts use fewer
FLASH_WG = 128  # attention_flash's workgroup (keys per chunk; a split holds whole chunks): one chunk per split up to 2k keys
MERGE_WG = 256  # matmul_attn's workgroup at least: the merge's loads spread over more invocations (H200, same runs, decode at contexts 0/512/2048: 64 -> 804/788/688, 128 -> 828/800/701, 256 -> 839/807/713 tok/s)
MAX_K = 1024  # matmul_attn keeps the merged (NH * HD,) row in 256 vec4s of workgroup memory


def flash_fits(n_head: int, head_dim: int) -> bool:
    """Whether the flash kernels' fixed workgroup arrays hold this head layout."""
    return n_head * head_dim <= MAX_K and n_head * FLASH_S <= 512 and head_dim // 4 <= 64


def part_bytes(n_head: int, head_dim: int) -> int:
    """Size of the partials buffer: (NH, S, HD / 4 + 1) vec4<f32>."""
    return n_head * FLASH_S * (head_dim // 4 + 1) * 16


def flash_dispatches(
    w,
    *,
    layer: str,
    n_head: int,
    n_head_kv: int,
    head_dim: int,
    k_cache: str,
    v_cache: str,
    part: str,
    wo: str,
    wo_qtype: int,
    wo_rows: int,
    wo_wg: int,
    window: int = 0,
    att_consts: dict[str, float | int | bool] | None = None,
) -> list[Dispatch]:
    """attention_flash (q -> partials) then matmul_attn (partials -> x += Wo att) for one layer;
    w is the builder's PlanWriter, wo the ROWMAJOR (split-K) blob of attn_output."""
    shared: dict[str, float | int | bool] = {"S": FLASH_S, "FLASH_WG": FLASH_WG}
    if window:
        shared["WINDOW"] = window
    att = w.pipeline("attention_flash.wgsl", NH=n_head, NKV=n_head_kv, HD=head_dim, WG=FLASH_WG, **shared, **(att_consts or {}))
    out = w.pipeline(
        "matmul_attn.wgsl", QTYPE=wo_qtype, M=wo_rows, K=n_head * head_dim, WG=max(wo_wg, MERGE_WG), ROWMAJOR=True,
        NH=n_head, HD=head_dim, **shared,
    )  # fmt: skip
    return [
        w.dispatch(att, ["step", "q", k_cache, v_cache, part], (n_head, FLASH_S, 1), f"{layer} attention (flash, {FLASH_S} splits)"),
        w.dispatch(out, ["step", wo, part, "x"], (-(-wo_rows // 2), 1, 1), f"{layer} attn merge+output+residual"),
    ]
