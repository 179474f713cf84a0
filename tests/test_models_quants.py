"""Q5_0 and the K-quants (Q4_K, Q5_K, Q6_K): the test quantizers write bytes gguf.quants reads,
the load-time unpacking (builder.split_blocks / repack) keeps every value exactly, and the
numpy reference runs models stored in them. No GPU needed (tests/test_kernels.py runs the
kernels on them)."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import quants

from companion.gpu.builder import HIGH_WORDS, repack, split_blocks
from companion.testing import quantize, write_tiny_gguf

SPLIT = [QT.Q5_0, QT.Q4_K, QT.Q5_K, QT.Q6_K]


@pytest.mark.parametrize("qtype", SPLIT, ids=lambda q: q.name)
def test_quantizer_round_trip(qtype):
    x = np.random.default_rng(int(qtype)).standard_normal((6, 512)).astype(np.float32)  # (6, 512)
    y = quants.dequantize(quantize(x, qtype), qtype).reshape(x.shape)  # (6, 512)
    rms_err = float(np.sqrt(np.mean((y - x) ** 2)))
    assert rms_err < {QT.Q5_0: 0.06, QT.Q4_K: 0.1, QT.Q5_K: 0.05, QT.Q6_K: 0.03}[qtype], rms_err


def _values(q: np.ndarray, s: np.ndarray, qtype: QT) -> np.ndarray:
    """Elements of split_blocks' (q, s), by the rules in shaders/_quant.wgsl."""
    q = q.astype(np.float32)  # (M, nb, 32)
    if qtype == QT.Q5_0:
        return s[..., :1] * (q - 16)
    if qtype == QT.Q6_K:
        return np.concatenate([s[..., :1] * (q[..., :16] - 32), s[..., 1:] * (q[..., 16:] - 32)], axis=-1)
    return q * s[..., :1] + s[..., 1:]


@pytest.mark.parametrize("qtype", SPLIT, ids=lambda q: q.name)
def test_split_blocks_are_exact(qtype):
    M, K = 5, 768
    raw = quantize(np.random.default_rng(1).standard_normal((M, K)).astype(np.float32), qtype)
    want = quants.dequantize(raw, qtype).reshape(M, K)
    q, s = split_blocks(raw, qtype)
    assert q.shape == (M, K // 32, 32) and int(q.max()) < (64 if qtype == QT.Q6_K else 32)
    np.testing.assert_array_equal(_values(q, s, qtype).reshape(M, K), want)


def unpack_split(blob: np.ndarray, qtype: QT, M: int, K: int, rowmajor: bool) -> np.ndarray:
    """numpy inverse of repack for the split types (the layout in shaders/_quant.wgsl)."""
    nb, H = K // 32, HIGH_WORDS.get(qtype, 0)
    n = nb * M * 4
    qs = blob[:n].reshape((M, nb, 4) if rowmajor else (nb, M, 4))  # u32
    s = blob[n : n + nb * M * 2].view(np.float32).reshape((M, nb, 2) if rowmajor else (nb, M, 2))
    o = n + -(-nb * M * 2 // 4) * 4
    qh = blob[o : o + nb * M * H].reshape((M, nb, H) if rowmajor else (nb, M, H))
    if not rowmajor:
        qs, s, qh = (a.transpose(1, 0, 2) for a in (qs, s, qh))  # (M, nb, ...)
    b = np.ascontiguousarray(qs).view(np.uint8)  # (M, nb, 16)
    q = np.concatenate([b & 15, b >> 4], axis=-1).astype(np.uint32)  # (M, nb, 32)
    k = np.arange(32, dtype=np.uint32)
    if H == 1:
        q |= ((qh[..., :1] >> k) & 1) << 4
    elif H == 2:
        word = np.where(k < 16, qh[..., :1], qh[..., 1:])  # (M, nb, 32)
        q |= ((word >> (2 * (k % 16))) & 3) << 4
    return _values(q, np.ascontiguousarray(s), qtype).reshape(M, K)


@pytest.mark.parametrize("qtype", SPLIT, ids=lambda q: q.name)
@pytest.mark.parametrize("rowmajor", [False, True])
@pytest.mark.parametrize("M", [1, 3, 17])
def test_repack_split_layout(qtype, rowmajor, M):
    K = 512
    raw = quantize(np.random.default_rng(M).standard_normal((M, K)).astype(np.float32), qtype)
    blob = repack(raw, qtype, K, rowmajor=rowmajor)
    assert blob.dtype == np.uint32 and blob.size % 4 == 0
    np.testing.assert_array_equal(unpack_split(blob, qtype, M, K, rowmajor), quants.dequantize(raw, qtype).reshape(M, K))


def test_k_quant_rows_must_hold_whole_super_blocks():
    from companion.errors import UnsupportedModelError

    raw = quantize(np.ones((2, 256), np.float32), QT.Q4_K)
    with pytest.raises(UnsupportedModelError, match="multiple of 256"):
        repack(raw, QT.Q4_K, 128)


def test_reference_runs_every_split_type(tmp_path):
    from companion.engines.reference import ReferenceEngine
    from companion.model import load_model

    outs = {}
    for q in (QT.F32, *SPLIT):
        m = load_model(write_tiny_gguf(tmp_path / f"{q.name}.gguf", n_embd=256, n_ff=512, n_head=4, n_head_kv=2, qtype=q))
        assert m.config.file_type == q.name
        outs[q] = ReferenceEngine(m, 32).eval([5, 6, 7, 8])  # (V,)
    for q in SPLIT:  # quantization noise only
        assert np.corrcoef(outs[q], outs[QT.F32])[0, 1] > (0.9 if q == QT.Q4_K else 0.97), q
