"""The lean reference: compiled kernels on GGUF blocks (companion.engines._cpu_kernels) against
gguf.quants' dequantization, and the lean engine against the float32 referee."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gguf import GGML_QUANT_SIZES, quants
from gguf import GGMLQuantizationType as QT

from companion.engines import _cpu_kernels as K
from companion.engines.reference import (
    LEAN_TYPES,
    QuantMatrix,
    ReferenceEngine,
    ReferenceModel,
    Stacked,
)

# per type: byte ranges of a block's f16 scales (set to sane values; random bytes could be
# inf/NaN) and of its quants (zeroed to find each value's offset term, see _bound)
LAYOUT = {
    QT.Q4_0: ([(0, 2)], (2, 18)),
    QT.Q4_1: ([(0, 2), (2, 4)], (4, 20)),
    QT.Q5_0: ([(0, 2)], (2, 22)),
    QT.Q5_1: ([(0, 2), (2, 4)], (4, 24)),
    QT.Q8_0: ([(0, 2)], (2, 34)),
    QT.Q4_K: ([(0, 2), (2, 4)], (16, 144)),
    QT.Q5_K: ([(0, 2), (2, 4)], (16, 176)),
    QT.Q6_K: ([(208, 210)], (0, 192)),
}
U = float(np.finfo(np.float32).eps) / 2  # unit roundoff of float32


def random_blocks(qtype: QT, rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """(rows, bytes per row) of random blocks with f16 scales in [1e-3, 1e-2]."""
    rng = np.random.default_rng(seed)
    block, size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, (rows, cols // block * size), dtype=np.uint8)
    v = raw.reshape(rows, -1, size)
    for a, b in LAYOUT[qtype][0]:
        v[:, :, a:b] = rng.uniform(1e-3, 1e-2, (rows, v.shape[1], 1)).astype(np.float16).view(np.uint8)
    return raw


def _bound(qtype: QT, raw: np.ndarray, x: np.ndarray) -> np.ndarray:
    """64 u sum_j (|w_j| + |c_j|) |x_j| per (position, row): w = a q + c is each value as
    scale times quant plus offset (c = the value with its quant bits zeroed), so |a q| <= |w| +
    |c| bounds every product either order of summation adds (the kernels sum scale * q * x and
    the offsets through block sums of x). A float32 sum of n terms errs by at most ~n u times
    the sum of their magnitudes; the kernels' sums are a few levels of <= 32 terms each, and
    the errors seen are ~1e-7 of it (64 u = 3.8e-6)."""
    block, size = GGML_QUANT_SIZES[qtype]
    a, b = LAYOUT[qtype][1]
    zero = raw.copy().reshape(raw.shape[0], -1, size)
    zero[:, :, a:b] = 0
    shape = (raw.shape[0], raw.shape[1] // size * block)
    w = quants.dequantize(raw, qtype).reshape(shape).astype(np.float64)  # (R, C)
    c = quants.dequantize(zero.reshape(raw.shape), qtype).reshape(shape).astype(np.float64)  # (R, C)
    return 64 * U * (np.abs(x.astype(np.float64)) @ (np.abs(w) + np.abs(c)).T)  # (T, R)


def test_lean_types_are_the_kernels_types():
    assert LEAN_TYPES == K.SUPPORTED


@pytest.mark.parametrize("qtype", sorted(K.KIND, key=lambda q: q.value), ids=lambda q: q.name)
@pytest.mark.parametrize("n_t", [1, 2])
def test_matvec_matches_dequantize_and_matmul(qtype, n_t):
    rows, cols = 70, 512  # 70 rows: two chunks of 64, one partial
    raw = random_blocks(qtype, rows, cols, seed=qtype.value)
    x = np.random.default_rng(1).standard_normal((n_t, cols)).astype(np.float32)  # (T, C)
    w = quants.dequantize(raw, qtype).reshape(rows, cols).astype(np.float64)  # (R, C)
    want = x.astype(np.float64) @ w.T  # (T, R)
    got = K.matvec(qtype, [raw], x)  # (T, R)
    assert got.dtype == np.float32 and got.shape == (n_t, rows)
    err = np.abs(got - want)
    assert (err <= _bound(qtype, raw, x)).all(), float((err / _bound(qtype, raw, x)).max())
    # about as close as numpy's own float32 product of the dequantized values: numba compiles the
    # kernels for the host's vector width, so the order of the sums (and the error, 6x numpy's
    # for Q5_0 on an AVX-512 Xeon, under 4x on AVX2 machines) moves with the CPU; the bound above
    # holds on each
    f32 = x @ w.astype(np.float32).T
    assert err.max() <= 8 * np.abs(f32 - want).max() + 1e-6


@pytest.mark.parametrize("qtype", sorted(K.KIND, key=lambda q: q.value), ids=lambda q: q.name)
def test_dequantize_rows_is_gguf_quants_exactly(qtype):
    rows, cols = 9, 512
    raw = random_blocks(qtype, rows, cols, seed=100 + qtype.value)
    want = quants.dequantize(raw, qtype).reshape(rows, cols).astype(np.float32)
    np.testing.assert_array_equal(K.dequantize_rows(qtype, raw, cols), want)
    np.testing.assert_array_equal(K.dequantize_rows(qtype, raw, cols, np.array([7, 0, 7])), want[[7, 0, 7]])
    np.testing.assert_array_equal(K.dequantize_rows(qtype, raw, cols, slice(2, 5)), want[2:5])


def test_stacked_matvec_is_the_concatenation():
    parts = [random_blocks(QT.Q4_1, n, 256, seed=n) for n in (5, 3, 64)]
    x = np.random.default_rng(2).standard_normal((1, 256)).astype(np.float32)
    one = np.concatenate([K.matvec(QT.Q4_1, [p], x) for p in parts], axis=1)
    np.testing.assert_array_equal(K.matvec(QT.Q4_1, parts, x), one)
    with pytest.raises(ValueError):
        K.matvec(QT.Q4_1, parts + parts, x)


def test_products_prefetch_the_rows_ahead():
    """The products hint the rows PREFETCH_ROWS ahead to the memory system (an x86 or arm64
    prefetch instruction in the compiled kernel; measured: decode ~15-30% faster on the 2-core
    machine, the head from ~6 to ~3 ms), and a hint changes no value, at the end of a matrix too."""
    import platform

    assert K.PREFETCH_ROWS > 0
    rng = np.random.default_rng(3)
    raw = quants.quantize(rng.standard_normal((7, 64)).astype(np.float32), QT.Q8_0)  # 7 rows: the hints run past the end
    x = rng.standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_allclose(K.matvec(QT.Q8_0, [raw], x), x @ quants.dequantize(raw, QT.Q8_0).reshape(7, 64).T, rtol=1e-5, atol=1e-5)
    from numba import njit

    @njit
    def walk(w):  # the products' per-row hint, compiled here (cached kernels keep no assembly)
        for i in range(w.shape[0]):
            K._prefetch_row(w, i + K.PREFETCH_ROWS)
        return w.shape[0]

    assert walk(raw) == 7
    asm = "\n".join(walk.inspect_asm().values()).lower()
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert "prefetcht0" in asm
    elif platform.machine().lower() in ("arm64", "aarch64"):
        assert "prfm" in asm


def test_prefill_path_uses_gguf_values():
    """More than FUSED_MAX_T positions: row chunks dequantized, then BLAS: x @ W.T of the exact values."""
    raw = random_blocks(QT.Q6_K, 40, 512, seed=3)
    w = quants.dequantize(raw, QT.Q6_K).reshape(40, 512).astype(np.float32)
    x = np.random.default_rng(4).standard_normal((9, 512)).astype(np.float32)
    m = QuantMatrix(QT.Q6_K, (40, 512), raw)
    np.testing.assert_allclose(m.matmul(x), x @ w.T, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(m.take(np.array([3, 39])), w[[3, 39]])


def test_kernel_cache_is_a_user_cache(monkeypatch):
    """numba's compiled code goes to the user's cache folder, not into the installed package."""
    import companion

    if "NUMBA_CACHE_DIR" in __import__("os").environ and K.CACHE_DIR == __import__("os").environ["NUMBA_CACHE_DIR"]:
        pass  # chosen by whoever runs the tests
    package = Path(companion.__file__).resolve().parent
    assert package not in Path(K.CACHE_DIR).resolve().parents
    import numba

    assert numba.config.CACHE_DIR == K.CACHE_DIR
    assert K.warm_up() >= 0.0


def test_kernels_run_on_the_tbb_pool_where_its_wheel_is_installed():
    """The tbb wheel (a dependency on Linux x86_64 and Windows) puts libtbb where the loader does
    not look; the kernels module loads it so numba's TBB pool starts, and every layer product
    then runs on it (a workqueue launch costs ~50 us, a TBB one ~3 us)."""
    import importlib.metadata
    import os

    import numba

    if os.environ.get("NUMBA_THREADING_LAYER"):
        pytest.skip("NUMBA_THREADING_LAYER is set by whoever runs the tests")
    try:
        importlib.metadata.version("tbb")
    except importlib.metadata.PackageNotFoundError:
        assert K.THREADING == "workqueue" and K.PARALLEL_MACS == 1_500_000
        return
    assert K.THREADING == "tbb" and K.PARALLEL_MACS == 0
    raw = random_blocks(QT.Q4_1, 512, 512, seed=5)
    mv = K.Matvec(QT.Q4_1, [raw])
    assert mv.kernel is K._matvec
    x = np.random.default_rng(6).standard_normal((1, 512)).astype(np.float32)
    w = quants.dequantize(raw, QT.Q4_1).reshape(512, 512)
    np.testing.assert_allclose(mv(x), x @ w.T, rtol=0, atol=1e-3)
    assert numba.threading_layer() == "tbb"


def test_lean_model_keeps_the_file_blocks(model):
    """No float32 copy of a quantized matrix: the lean model's matrices are views of the map."""
    w = ReferenceModel(model, lean=True)
    assert w.lean and isinstance(w.tok_embd, QuantMatrix) and w.output is w.tok_embd
    lw = w.layers[0]
    assert isinstance(lw.wqkv, Stacked) and lw.wqkv.fused and isinstance(lw.w_down, QuantMatrix)
    for m in (w.tok_embd, lw.w_down, *lw.wqkv.parts):
        assert np.shares_memory(m.raw, model.file.data)
    f32_bytes = sum(a.nbytes for lw in w.layers for a in (lw.attn_norm, lw.ffn_norm))
    assert f32_bytes < 1 << 20


def test_lean_engine_matches_the_f32_referee(model, reference_weights):
    """Both compute in float32 from the same values and differ only in the order of sums:
    logits within 2e-3 (measured ~5e-5; the F32 goldens allow 0.05), the same argmax, over
    a batched prefill and token-by-token decoding."""
    ids = [1, 9690, 198, 2683, 359, 253, 5356, 11173, 30, 2]
    lean, ref = ReferenceEngine(model, 64), ReferenceEngine(reference_weights, 64)
    assert lean.w.lean and not ref.w.lean
    a, b = lean.eval_all(ids), ref.eval_all(ids)  # (T, V)
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-3)
    tok = int(a[-1].argmax())
    for _ in range(6):
        x, y = lean.eval([tok]), ref.eval([tok])  # (V,)
        np.testing.assert_allclose(x, y, rtol=0, atol=2e-3)
        assert int(x.argmax()) == int(y.argmax())
        tok = int(x.argmax())


@pytest.mark.parametrize("kind", ["gemma3-q", "qwen2", "llama3"])
def test_lean_tiny_models_match_f32(tmp_path, kind):
    """gemma3-q holds Q5_0, Q8_0, Q4_K and Q6_K matrices; qwen2 (q/k/v biases, neox RoPE) and
    llama3 (RoPE frequency factors) F32 ones, used in place. Decoding goes through the compiled
    step (companion.engines._cpu_step) for 12 positions: past gemma's sliding window of 8, so
    its sliding layers drop the oldest keys while the global ones keep them."""
    from companion.model import load_model
    from companion.testing import write_tiny_arch

    m = load_model(write_tiny_arch(tmp_path / f"{kind}.gguf", kind))
    lean, ref = ReferenceEngine(m, 32), ReferenceEngine(m, 32, lean=False)
    ids = [5, 6, 7, 8, 9]
    np.testing.assert_allclose(lean.eval_all(ids), ref.eval_all(ids), rtol=0, atol=2e-3)
    for tok in range(11, 23):
        x, y = lean.eval([tok]), ref.eval([tok])  # (V,)
        np.testing.assert_allclose(x, y, rtol=0, atol=2e-3)
    assert lean.n_past == ref.n_past == len(ids) + 12


def test_compiled_decode_step_is_the_batched_pass(tmp_path):
    """A decode step through the compiled glue gives what the batched numpy pass gives for the
    same position: the same model, one engine stepping token by token, one taking the whole
    sequence at once (its last row), past the sliding window."""
    from companion.model import load_model
    from companion.testing import write_tiny_arch

    m = load_model(write_tiny_arch(tmp_path / "g.gguf", "gemma3-q"))
    ids = list(range(3, 17))  # 14 positions > window 8
    step, whole = ReferenceEngine(m, 32), ReferenceEngine(m, 32)
    for t in ids:
        last = step.eval([t])  # (V,) compiled step (T = 1)
    batched = whole.eval_all(ids)  # (T, V) numpy pass
    np.testing.assert_allclose(last, batched[-1], rtol=0, atol=2e-3)
    assert int(last.argmax()) == int(batched[-1].argmax())


def test_long_prompts_go_in_chunks_with_a_growing_cache(tmp_path, monkeypatch):
    """A prompt longer than PREFILL_CHUNK gives the logits of one batched pass; the KV cache
    starts small and grows to what the positions need (never past n_ctx)."""
    from companion.engines import reference
    from companion.model import load_model
    from companion.testing import write_tiny_arch

    m = load_model(write_tiny_arch(tmp_path / "llama3.gguf", "llama3"))  # 256 positions
    ids = [(7 * i + 3) % 250 + 3 for i in range(200)]
    monkeypatch.setattr(reference, "KV_CACHE_START", 16)
    monkeypatch.setattr(reference, "PREFILL_CHUNK", 48)
    e = ReferenceEngine(m, 256)
    assert e.k_cache.shape[2] == 16
    e.eval([3])  # one position: no growth
    assert e.k_cache.shape[2] == 16
    e.reset()
    chunked = e.eval_all(ids)  # (T, V)
    assert e.k_cache.shape[2] == 200 and e.v_cache.shape == e.k_cache.shape
    monkeypatch.setattr(reference, "PREFILL_CHUNK", 10_000)
    whole = ReferenceEngine(m, 256).eval_all(ids)  # (T, V)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-3)
    e.reset(190)
    np.testing.assert_allclose(e.eval(ids[190:]), whole[-1], rtol=0, atol=1e-3)
    e.eval(list(range(3, 59)))  # 256 positions: the cache grows to n_ctx, not past it
    assert e.k_cache.shape[2] == 256
