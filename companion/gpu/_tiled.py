"""Tiled prefill matmuls in a plan: where a batch of token rows goes through a matmul on GPUs
(the split-K layout), the kernels of shaders/*_tiled.wgsl compute 32 row pairs for 16 tokens
per workgroup (_tile.wgsl), reading each weight once per 16 tokens from workgroup-staged inputs,
instead of the split-K matvec's one workgroup per row pair and token."""

from __future__ import annotations

from companion.gpu.plan import Count, Dispatch

# the batched kernels that have a tiled twin, with the same bindings and fused epilogue
TILED = {
    "matmul.wgsl": "matmul_tiled.wgsl",
    "matmul_swiglu.wgsl": "matmul_swiglu_tiled.wgsl",
    "matmul_qkv.wgsl": "matmul_qkv_tiled.wgsl",
}
ENABLED = True  # False: the plan uses the earlier kernels (for before/after measurements)
TILE_PAIRS = 32  # row pairs per workgroup (_tile.wgsl)
TILE_TOKENS = 16  # token rows per workgroup


def tile_split(K: int) -> tuple[int, int]:
    """(KS, KB) for a K-column matrix: K groups of 64 invocations per workgroup (4 or 2 where
    each still gets at least 4 of the 32-element blocks) and blocks staged per step."""
    nb = K // 32
    for ks in (4, 2):
        if nb % ks == 0 and nb // ks >= 4:
            return ks, 1
    return 1, 2 if nb % 2 == 0 else 1


def tiled_dispatch(w, shader: str, weight: str, qtype: int, M: int, K: int, buffers, label: str, **constants) -> Dispatch:
    """The tiled twin of a batched split-K matmul dispatch (w: the builder's PlanWriter)."""
    pairs = -(-M // 2) if shader == "matmul.wgsl" else M // 2
    ks, kb = tile_split(K)
    constants = {k: v for k, v in constants.items() if k not in ("TT", "WG", "SPLITK")}
    pl = w.pipeline(TILED[shader], QTYPE=qtype, M=M, K=K, KS=ks, KB=kb, ROWMAJOR=True, **constants)
    return w.dispatch(pl, ["step", weight, *buffers], (-(-pairs // TILE_PAIRS), Count(var="n_tokens", per=TILE_TOKENS), 1), label)
