"""Flash-decoding attention in a plan: for the one token of a decode step on GPUs, the keys of
each head are split over S workgroups (shaders/attention_flash.wgsl) and the partial results
are merged inside the output projection (shaders/matmul_attn.wgsl), so a long context adds
parallel workgroups instead of a longer serial walk, and the split costs no extra dispatch.
Where the layer's q, k and v come from one pair-ordered blob (matmul_qkv's), the attention
kernel also computes them itself (shaders/attention_qkv_flash.wgsl: each workgroup its head's
query, one more workgroup per head the new key), so norm + qkv + RoPE costs no dispatch either."""

from __future__ import annotations

from dataclasses import dataclass

from companion.gpu.plan import Dispatch

ENABLED = True  # False: the plan uses the earlier kernels (for before/after measurements)
FUSE_QKV = True  # False: the decode step keeps matmul_qkv's dispatch before attention_flash
FLASH_S = 16  # splits per head: 16 x 9 heads fill the GPU from ~1k keys on; short contexts use fewer
FLASH_WG = 128  # attention_flash's workgroup (keys per chunk; a split holds whole chunks): one chunk per split up to 2k keys
MERGE_WG = 128  # matmul_attn's workgroup at least: the merge's loads spread over more invocations
MAX_K = 1024  # matmul_attn keeps the merged (NH * HD,) row in 256 vec4s of workgroup memory
SLOTS_MAX = 512  # matmul_attn's (NH, slots) workgroup arrays (shaders/_flash.wgsl)


@dataclass(frozen=True)
class QkvInput:
    """Where attention_qkv_flash takes a layer's attention input from."""

    blob: str  # ROWMAJOR, pair-ordered Wqkv (builder.qkv_pair_order)
    qtype: int
    rows: int  # (n_head + 2 n_head_kv) * head_dim
    cols: int  # n_embd
    norm: str  # attn_norm weight
    rope: str  # the layer's (n_ctx, head_dim / 2) cos, sin table
    neox: bool
    eps: float


def flash_fits(n_head: int, head_dim: int) -> bool:
    """Whether the flash kernels' fixed workgroup arrays hold this head layout."""
    return n_head * head_dim <= MAX_K and n_head * (FLASH_S + 1) <= SLOTS_MAX and head_dim // 4 <= 64


def qkv_fits(head_dim: int) -> bool:
    """Whether attention_qkv_flash can split a head's row pairs evenly over its workgroup."""
    return FUSE_QKV and FLASH_WG % (head_dim // 2) == 0


def part_bytes(n_head: int, head_dim: int) -> int:
    """Size of the partials buffer: (NH, S + 1, HD / 4 + 1) vec4<f32> (the last slot: CUR)."""
    return n_head * (FLASH_S + 1) * (head_dim // 4 + 1) * 16


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
    qkv: QkvInput | None = None,
) -> list[Dispatch]:
    """attention_flash (q -> partials) then matmul_attn (partials -> x += Wo att) for one layer;
    w is the builder's PlanWriter, wo the ROWMAJOR (split-K) blob of attn_output. With qkv,
    attention_qkv_flash (x -> q, k, v -> cache and partials) instead of attention_flash."""
    shared: dict[str, float | int | bool] = {"S": FLASH_S, "FLASH_WG": FLASH_WG}
    if window:
        shared["WINDOW"] = window
    heads: dict[str, float | int | bool] = {"NH": n_head, "NKV": n_head_kv, "HD": head_dim, "WG": FLASH_WG, **(att_consts or {})}
    if qkv is None:
        att = w.pipeline("attention_flash.wgsl", **heads, **shared)
        first = w.dispatch(att, ["step", "q", k_cache, v_cache, part], (n_head, FLASH_S, 1), f"{layer} attention (flash, {FLASH_S} splits)")
    else:
        shared["CUR"] = True
        att = w.pipeline(
            "attention_qkv_flash.wgsl", QTYPE=qkv.qtype, M=qkv.rows, K=qkv.cols, ROWMAJOR=True, EPS=qkv.eps, NEOX=qkv.neox,
            **heads, **shared,
        )  # fmt: skip
        first = w.dispatch(
            att, ["step", qkv.blob, "x", qkv.norm, qkv.rope, k_cache, v_cache, part], (n_head, FLASH_S + 1, 1),
            f"{layer} norm+qkv+rope+kv+attention (flash, {FLASH_S} splits + new key)",
        )  # fmt: skip
    out = w.pipeline(
        "matmul_attn.wgsl", QTYPE=wo_qtype, M=wo_rows, K=n_head * head_dim, WG=max(wo_wg, MERGE_WG), ROWMAJOR=True,
        NH=n_head, HD=head_dim, **shared,
    )  # fmt: skip
    return [first, w.dispatch(out, ["step", wo, part, "x"], (-(-wo_rows // 2), 1, 1), f"{layer} attn merge+output+residual")]
