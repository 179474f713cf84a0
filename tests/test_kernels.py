"""Each WGSL kernel against numpy, through one-dispatch plans on the native executor.
Weights are quantized with gguf.quants and checked against gguf.quants.dequantize.
Kernels run in every variant they have (f32, subgroups, f16, f16+subgroups) where the adapter
offers the features; lavapipe offers both. "subgroups" runs _reduce_sg.wgsl's path for probed
linear subgroups (both executors' once their probe passed), "f16+subgroups" its path for unprobed ones:
conftest_gpu.subgroup_size_for."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_gpu import make_weight, make_weight_rowmajor, rope_ref, run_program
from gguf import GGMLQuantizationType as QT
from gguf import quants

from companion.gpu.builder import (
    STEP_SIZE,
    BuiltPlan,
    PlanWriter,
    attention_gq,
    qkv_pair_order,
    repack,
    rope_table,
    uniform_block,
)
from companion.gpu.executor import Executor
from companion.gpu.plan import Plan, Program
from companion.testing import quantize

pytestmark = pytest.mark.gpu

QTYPES = [QT.F32, QT.F16, QT.Q4_0, QT.Q4_1, QT.Q8_0]
# kernel variants by the WebGPU features they use
VARIANTS = {"f32": (), "subgroups": ("subgroups",), "f16": ("shader-f16",), "f16+subgroups": ("shader-f16", "subgroups")}
ALL = list(VARIANTS)
F16 = ["f32", "f16"]  # kernels without reductions: subgroups change nothing
SG = ["f32", "subgroups"]  # kernels without inner products: f16 changes nothing


def tol_for(feats, f32_tol: float = 2e-4) -> float:
    """Tolerance relative to the largest |value| (at least 1): f16 rounds inputs at ~5e-4, and
    Q4_1's offset cancels against q x, so a few 1e-3 after a norm and SwiGLU."""
    return 1.5e-2 if "shader-f16" in feats else f32_tol


def run_kernel(device, shader, constants, data, bind, workgroups, step, out, out_dtype=np.float32, features=()):
    """Run one dispatch; data: name -> array (uploaded) or int (zeroed bytes); features: the
    variant (WebGPU features the kernel may use)."""
    return run_program(device, data, [(shader, constants, bind, workgroups)], step, out, features, out_dtype)


def ceil(a, b):
    return -(-a // b)


def rms(x, g, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * g


def close(a, b, tol: float = 2e-4):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=0)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K", [(1, 32), (33, 64), (200, 576)])
def test_dequant_embed(gpu_device, qtype, M, K):
    rng = np.random.default_rng(M * 7 + K)
    blob, deq = make_weight(rng, M, K, qtype)
    ids = np.array([M - 1, 0, M // 2, M - 1], dtype=np.uint32)
    T = len(ids)
    got = run_kernel(
        gpu_device, "embed.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=64),
        {"ids": ids, "wq": blob, "x": T * K * 4}, ["ids", "wq", "x"],
        (ceil(K // 32, 64), T, 1), {"n_tokens": T}, "x",
    ).reshape(T, K)
    np.testing.assert_allclose(got, deq[ids], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T,TT", [(1, 32, 1, 1), (7, 64, 3, 4), (130, 96, 5, 4), (577, 576, 1, 1), (64, 1536, 9, 4), (40, 64, 6, 2), (9, 32, 5, 3)])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("variant", F16, indirect=True)
def test_matmul(gpu_device, variant, qtype, M, K, T, TT, add):
    check_matmul(gpu_device, variant, qtype, M, K, T, add, dict(WG=64, TT=TT), (ceil(ceil(M, 2), 64), ceil(T, TT), 1))


def check_matmul(gpu_device, variant, qtype, M, K, T, add, consts, workgroups, rowmajor=False):
    """matmul.wgsl (y = W x, or y += W x) against numpy, in either layout."""
    rng = np.random.default_rng(M + K + T)
    blob, W = make_weight(rng, M, K, qtype, rowmajor=rowmajor)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    y0 = rng.standard_normal((T, M)).astype(np.float32)  # (T, M)
    got = run_kernel(
        gpu_device, "matmul.wgsl", dict(QTYPE=int(qtype), M=M, K=K, ADD=add, **consts),
        {"wq": blob, "x": x, "y": y0}, ["wq", "x", "y"], workgroups, {"n_tokens": T}, "y", features=variant,
    ).reshape(T, M)
    close(got, x @ W.T + (y0 if add else 0), tol_for(variant))


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0, QT.F32], ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T", [(5, 64, 3), (301, 576, 6)])
@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_norm(gpu_device, variant, qtype, M, K, T, last_only):
    rng = np.random.default_rng(M * K + T)
    blob, W = make_weight(rng, M, K, qtype)
    x = rng.standard_normal((T, K)).astype(np.float32) * 3  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    tt = 1 if last_only else 4
    got = run_kernel(
        gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=64, TT=tt, EPS=1e-5, LAST_ONLY=last_only),
        {"wq": blob, "x": x, "g": g, "y": T * M * 4}, ["wq", "x", "g", "y"],
        (ceil(ceil(M, 2), 64), 1 if last_only else ceil(T, tt), 1), {"n_tokens": T}, "y", features=variant,
    ).reshape(T, M)
    want = rms(x, g) @ W.T  # (T, M)
    if last_only:
        close(got[:1], want[-1:], tol_for(variant))
    else:
        close(got, want, tol_for(variant))


@pytest.mark.parametrize("qtype", [QT.Q4_0, QT.Q4_1, QT.F16], ids=lambda q: q.name)
@pytest.mark.parametrize("N,K,T", [(3, 32, 1), (100, 64, 5), (1536, 576, 1)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_swiglu(gpu_device, variant, qtype, N, K, T):
    check_swiglu(gpu_device, variant, qtype, N, K, T, dict(TT=4), (ceil(N, 64), ceil(T, 4), 1))


def check_swiglu(gpu_device, variant, qtype, N, K, T, consts, workgroups, rowmajor=False):
    """matmul_swiglu.wgsl (silu(Wg h) * (Wu h), h = rmsnorm(x) g) against numpy, in either layout."""
    rng = np.random.default_rng(N + K)
    blob, W = make_weight(rng, 2 * N, K, qtype, rowmajor=rowmajor)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    got = run_kernel(
        gpu_device, "matmul_swiglu.wgsl", dict(QTYPE=int(qtype), M=2 * N, K=K, WG=64, EPS=1e-5, **consts),
        {"wq": blob, "x": x, "g": g, "y": T * N * 4}, ["wq", "x", "g", "y"], workgroups, {"n_tokens": T}, "y",
        features=variant,
    ).reshape(T, N)
    h = rms(x, g) @ W.T  # (T, 2N)
    a, u = np.clip(h[:, :N], -60, None), h[:, N:]  # (T, N) each (clip: no exp overflow warning)
    close(got, a / (1 + np.exp(-a)) * u, tol_for(variant))


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("H,KV,hd,K,T,n_past", [(2, 1, 8, 32, 3, 0), (9, 3, 64, 576, 5, 7), (4, 2, 32, 64, 1, 40)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_qkv_rope(gpu_device, variant, neox, H, KV, hd, K, T, n_past):
    rng = np.random.default_rng(H * hd + T)
    NQ, NK = H * hd, KV * hd
    M = NQ + 2 * NK
    w = rng.standard_normal((M, K)).astype(np.float32)
    raw = quants.quantize(w, QT.Q4_1)  # (M, row bytes)
    W = quants.dequantize(raw, QT.Q4_1).reshape(M, K)  # (M, K)
    blob = repack(raw[qkv_pair_order(H, KV, hd, neox)], QT.Q4_1, K)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    n_ctx, base = 64, 10000.0
    got_q = run_kernel(
        gpu_device, "matmul_qkv.wgsl",
        dict(QTYPE=int(QT.Q4_1), M=M, K=K, WG=64, TT=4, EPS=1e-5, NQ=NQ, NK=NK, HD=hd, NEOX=neox),
        {"wq": blob, "x": x, "g": g, "rope": rope_table(n_ctx, hd, base), "q": T * NQ * 4,
         "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4},
        ["wq", "x", "g", "rope", "q", "kc", "vc"], (ceil(M // 2, 64), ceil(T, 4), 1),
        {"n_tokens": T, "n_past": n_past}, "q", features=variant,
    ).reshape(T, H, hd)
    h = rms(x, g) @ W.T  # (T, M)
    pos = np.arange(n_past, n_past + T)
    q = rope_ref(h[:, :NQ].reshape(T, H, hd), pos, base, neox)  # (T, H, hd)
    close(got_q, q, tol_for(variant))


@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_qkv_writes_kv_cache(gpu_device, variant):
    rng = np.random.default_rng(5)
    H, KV, hd, K, T, n_past, n_ctx = 4, 2, 16, 64, 3, 5, 16
    NQ, NK = H * hd, KV * hd
    M = NQ + 2 * NK
    raw = quants.quantize(rng.standard_normal((M, K)).astype(np.float32), QT.Q8_0)
    W = quants.dequantize(raw, QT.Q8_0).reshape(M, K)
    blob = repack(raw[qkv_pair_order(H, KV, hd, False)], QT.Q8_0, K)
    x = rng.standard_normal((T, K)).astype(np.float32)
    g = np.ones(K, np.float32)
    common = dict(QTYPE=int(QT.Q8_0), M=M, K=K, WG=64, TT=4, EPS=1e-5, NQ=NQ, NK=NK, HD=hd, NEOX=False)
    data = {"wq": blob, "x": x, "g": g, "rope": rope_table(n_ctx, hd, 10000.0), "q": T * NQ * 4,
            "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4}
    args = (["wq", "x", "g", "rope", "q", "kc", "vc"], (ceil(M // 2, 64), 1, 1), {"n_tokens": T, "n_past": n_past})
    kv = np.float16 if "shader-f16" in variant else np.float32  # KV cache element of the variant
    data.update(kc=n_ctx * NK * 4, vc=n_ctx * NK * 4)
    kc = run_kernel(gpu_device, "matmul_qkv.wgsl", common, data, *args, "kc", kv, variant)
    vc = run_kernel(gpu_device, "matmul_qkv.wgsl", common, data, *args, "vc", kv, variant)
    kc = kc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, KV, hd)  # (n_ctx, KV, hd)
    vc = vc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, NK)  # (n_ctx, NK)
    h = rms(x, g) @ W.T  # (T, M)
    k = rope_ref(h[:, NQ : NQ + NK].reshape(T, KV, hd), np.arange(n_past, n_past + T), 10000.0, False)
    close(kc[n_past : n_past + T], k, tol_for(variant))
    close(vc[n_past : n_past + T], h[:, NQ + NK :], tol_for(variant))
    assert not kc[:n_past].any() and not kc[n_past + T :].any()


@pytest.mark.parametrize("H,KV,hd,T,n_past", [(2, 1, 8, 1, 0), (9, 3, 64, 4, 3), (4, 2, 32, 1, 300), (3, 3, 16, 7, 250),
                                               (2, 1, 96, 2, 600), (1, 1, 256, 1, 40)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
@pytest.mark.parametrize("shader,wg,gq", [("attention.wgsl", 64, 1), ("attention_split.wgsl", 256, 1), ("attention_split.wgsl", 64, 1),
                                          ("attention_split.wgsl", 256, 0), ("attention_split.wgsl", 64, 0)])  # fmt: skip
def test_attention(gpu_device, variant, H, KV, hd, T, n_past, shader, wg, gq):
    """gq 0: attention_split's query heads per workgroup as the plan picks them (all of a
    key/value head's, up to 4)."""
    if hd // 4 > wg:
        pytest.skip("attention_split needs WG >= HD / 4")
    gq = gq or attention_gq(H, KV)
    consts = dict(GQ=gq) if shader == "attention_split.wgsl" else {}
    rng = np.random.default_rng(H + T + n_past)
    n_ctx = n_past + T + 3
    NQ = H * hd
    q = rng.standard_normal((T, H, hd)).astype(np.float32)  # (T, H, hd)
    kc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    vc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    if "shader-f16" in variant:  # the f16 KV cache: store f16, compare against its exact values
        kc, vc = kc.astype(np.float16), vc.astype(np.float16)
    got = run_kernel(
        gpu_device, shader, dict(NH=H, NKV=KV, HD=hd, WG=wg, **consts),
        {"q": q, "kc": kc, "vc": vc, "o": T * NQ * 4}, ["q", "kc", "vc", "o"],
        (H // gq, T, 1), {"n_tokens": T, "n_past": n_past}, "o", features=variant,
    ).reshape(T, H, hd)
    kc, vc = kc.astype(np.float32), vc.astype(np.float32)
    want = np.zeros_like(q)
    for t in range(T):
        S = n_past + t + 1
        for h in range(H):
            kv = h // (H // KV)
            s = kc[:S, kv] @ q[t, h] / np.sqrt(hd)  # (S,)
            p = np.exp(s - s.max())
            want[t, h] = (p / p.sum()) @ vc[:S, kv]  # (hd,)
    close(got, want, 1e-4)


def sample(device, logits, step, hist=(), features=(), **consts):
    V = logits.size
    h = np.zeros(max(4, len(hist)), np.uint32)
    h[: len(hist)] = hist
    st = dict(temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, n_hist=len(hist), seed=0, rng_step=0)
    st.update(step)
    return int(run_kernel(device, "sample.wgsl", dict(V=V, **consts), {"logits": logits, "hist": h, "out": 4},
                          ["logits", "hist", "out"], (1, 1, 1), st, "out", np.uint32, features)[0])


@pytest.mark.parametrize("V", [1, 7, 1000, 49152])
@pytest.mark.parametrize("variant", SG, indirect=True)
def test_sample_argmax(gpu_device, variant, V):
    rng = np.random.default_rng(V)
    logits = rng.standard_normal(V).astype(np.float32) * 5
    assert sample(gpu_device, logits, {}, features=variant) == int(np.argmax(logits))
    logits[V // 3] = logits[V // 2] = logits.max() + 1  # tie: lowest id wins, as numpy
    assert sample(gpu_device, logits, {}, features=variant) == int(np.argmax(logits))
    logits[V - 1] = logits.max()  # tie across invocations and subgroups
    assert sample(gpu_device, logits, {}, features=variant) == int(np.argmax(logits))


def test_sample_repeat_penalty_neighbours(gpu_device):
    """Ids of one vec4 penalised by different invocations: no write is lost."""
    logits = np.array([3.0, 2.9, 2.8, 2.7, 1.0, 0.5, 0.1, 0.0], np.float32)
    assert sample(gpu_device, logits.copy(), {"repeat_penalty": 4.0}, [0, 1, 2, 3]) == 4
    assert sample(gpu_device, logits.copy(), {"repeat_penalty": 4.0}, [3, 1, 0, 2, 4]) == 0


def test_sample_repeat_penalty(gpu_device):
    from companion.sampling import apply_repetition_penalty

    logits = np.array([1.0, 3.0, 2.9, -1.0, 0.5], np.float32)
    hist = [1, 1, 4]
    want = int(np.argmax(apply_repetition_penalty(logits, hist, 1.5, 64)))
    assert want == 2
    assert sample(gpu_device, logits.copy(), {"repeat_penalty": 1.5}, hist) == want


@pytest.mark.parametrize("params", [
    dict(top_k=1, top_p=1.0, min_p=0.0),
    dict(top_k=0, top_p=1e-6, min_p=0.0),
    dict(top_k=0, top_p=1.0, min_p=0.999),
])
@pytest.mark.parametrize("variant", SG, indirect=True)
def test_sample_degenerate_filters_give_argmax(gpu_device, variant, params):
    rng = np.random.default_rng(3)
    logits = rng.standard_normal(5000).astype(np.float32) * 3
    for s in range(3):
        got = sample(gpu_device, logits, dict(temperature=0.8, seed=s, rng_step=s, **params), features=variant)
        assert got == int(np.argmax(logits))


@pytest.mark.parametrize("variant", SG, indirect=True)
def test_sample_stays_in_candidate_set_and_follows_seed(gpu_device, variant):
    from companion.sampling import SamplingParams, filter_probs

    rng = np.random.default_rng(11)
    logits = rng.standard_normal(3000).astype(np.float32) * 2
    p = SamplingParams(temperature=0.9, top_k=40, top_p=0.9, min_p=0.05)
    allowed = set(filter_probs(logits, p)[0].tolist())
    st = dict(temperature=p.temperature, top_k=p.top_k, top_p=p.top_p, min_p=p.min_p, seed=42)
    picks = [sample(gpu_device, logits, dict(st, rng_step=i), features=variant) for i in range(12)]
    assert set(picks) <= allowed
    assert len(set(picks)) > 1  # it really draws
    assert picks[:4] == [sample(gpu_device, logits, dict(st, rng_step=i), features=variant) for i in range(4)]


@pytest.mark.parametrize("top_k,top_p,min_p", [(40, 0.95, 0.05), (3, 1.0, 0.0), (256, 0.5, 0.0), (17, 0.9, 0.2)])
def test_sample_gathered_top_k_draws_as_the_passes_do(gpu_device, top_k, top_p, min_p):
    """With top_k <= KMAX the sampler gathers the top-k logits (radix select) and filters and
    draws among those; the ids are those of the passes over every logit (KMAX 0) for the same
    seeds and steps, on a real vocabulary's size with a spread of logits and equal values."""
    rng = np.random.default_rng(top_k)
    logits = (rng.standard_normal(49152) * 2.5).astype(np.float32)
    logits[rng.integers(0, 49152, 60)] = np.sort(logits)[-top_k // 2 - 1]  # ties around the k-th
    st = dict(temperature=0.8, top_k=top_k, top_p=top_p, min_p=min_p, seed=5)
    fast = [sample(gpu_device, logits, dict(st, rng_step=i)) for i in range(24)]
    slow = [sample(gpu_device, logits, dict(st, rng_step=i), KMAX=0) for i in range(24)]
    assert fast == slow
    assert len(set(fast)) > 1 or top_p <= 0.5
    from companion.sampling import SamplingParams, filter_probs

    allowed = filter_probs(logits, SamplingParams(temperature=0.8, top_k=top_k, top_p=top_p, min_p=min_p))[0]
    ties = np.flatnonzero(logits >= np.sort(logits)[-top_k])  # the GPU keeps every tie at the k-th
    assert set(fast) <= set(allowed.tolist()) | set(ties.tolist())


def test_sample_many_ties_at_the_kth_logit(gpu_device):
    """More equal logits at the k-th place than the gathered path holds (CAP 512): every one of
    them stays a candidate (the passes over the logits take over), and the draws spread over them."""
    logits = np.full(5000, -1.0, np.float32)
    logits[::7] = 2.0  # 715 equal best logits
    st = dict(temperature=1.0, top_k=40, seed=9)
    picks = {sample(gpu_device, logits, dict(st, rng_step=i)) for i in range(40)}
    assert all(p % 7 == 0 for p in picks) and len(picks) > 20


def test_sample_distribution(gpu_device):
    """Frequencies over many draws follow the softmax (small vocabulary, loose bound)."""
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], np.float32))
    counts = np.zeros(4)
    for i in range(200):
        counts[sample(gpu_device, logits, dict(temperature=1.0, seed=7, rng_step=i))] += 1
    np.testing.assert_allclose(counts / 200, [0.5, 0.3, 0.15, 0.05], atol=0.1)


# ----------------------------------------------------------------------------- split-K layout
# The GPU layout (builder.choose_layout "splitk"): row-major blobs, one workgroup per row pair
# and token, invocations striding over K (shaders/_matvec.wgsl). WG 32 with K = 1536 F32 (384
# units) and WG 256 with K = 32 cover more units than invocations and the reverse.


SK = dict(ROWMAJOR=True, SPLITK=True, TT=1)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T,WGS", [(1, 32, 1, 32), (7, 64, 3, 64), (131, 576, 1, 64), (64, 1536, 2, 32), (9, 32, 1, 256)])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_splitk(gpu_device, variant, qtype, M, K, T, WGS, add):
    check_matmul(gpu_device, variant, qtype, M, K, T, add, dict(WG=WGS, **SK), (ceil(M, 2), T, 1), rowmajor=True)


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T", [(5, 64, 3), (301, 576, 2)])
@pytest.mark.parametrize("last_only", [False, True])
@pytest.mark.parametrize("variant", ALL, indirect=True)
@pytest.mark.parametrize("rp", [1, 4])
def test_matmul_norm_splitk(gpu_device, variant, qtype, M, K, T, last_only, rp):
    rng = np.random.default_rng(M * K + T)
    blob, W = make_weight_rowmajor(rng, M, K, qtype)
    x = rng.standard_normal((T, K)).astype(np.float32) * 3  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    got = run_kernel(
        gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=64, EPS=1e-5, LAST_ONLY=last_only, RP=rp, **SK),
        {"wq": blob, "x": x, "g": g, "y": T * M * 4}, ["wq", "x", "g", "y"],
        (ceil(ceil(M, 2), rp), 1 if last_only else T, 1), {"n_tokens": T}, "y", features=variant,
    ).reshape(T, M)
    want = rms(x, g) @ W.T  # (T, M)
    close(got[:1] if last_only else got, want[-1:] if last_only else want, tol_for(variant))


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("N,K,T", [(3, 32, 1), (100, 64, 2), (1536, 576, 1)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_swiglu_splitk(gpu_device, variant, qtype, N, K, T):
    check_swiglu(gpu_device, variant, qtype, N, K, T, SK, (N, T, 1), rowmajor=True)


@pytest.mark.parametrize("qtype,N,K,T", [(QT.Q4_1, 1536, 576, 1), (QT.Q8_0, 3, 64, 1), (QT.F16, 100, 1536, 2),
                                          (QT.F32, 7, 32, 1), (QT.Q6_K, 5, 256, 1), (QT.Q5_0, 9, 576, 2)])  # fmt: skip
@pytest.mark.parametrize("variant", ["f32", "subgroups"], indirect=True)
def test_matmul_swiglu_splitk_fused_norm(gpu_device, variant, qtype, N, K, T):
    """FUSED_NORM (the f32 decode kernels): the norm's sum of squares from the matvec loop."""
    check_swiglu(gpu_device, variant, qtype, N, K, T, dict(SK, FUSED_NORM=True), (N, T, 1), rowmajor=True)


@pytest.mark.parametrize("qtype,N,K", [(QT.Q4_1, 101, 576), (QT.Q6_K, 7, 256)])
@pytest.mark.parametrize("pairs", [2, 4, 8])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("variant", ["f32", "subgroups", "f16+subgroups"], indirect=True)
def test_splitk_row_pairs_per_workgroup(gpu_device, variant, qtype, N, K, pairs, fused):
    """PAIRS (_matvec.wgsl, the decode step's norm+matvec kernels on GPUs): each workgroup
    computes several row pairs, WG / PAIRS lanes each (16 lanes for 18 Q4_1 units: lanes
    loop; 8 for 8: on lavapipe, whose subgroups are 8 wide, the subgroup path's shuffles), the
    last workgroup partly past the rows; swiglu and the output head's RP groups."""
    if fused and "shader-f16" in variant:
        pytest.skip("FUSED_NORM is for the f32 kernels")
    check_swiglu(gpu_device, variant, qtype, N, K, 1, dict(SK, PAIRS=pairs, FUSED_NORM=fused), (ceil(N, pairs), 1, 1), rowmajor=True)  # WG 64
    if fused:
        return
    rng = np.random.default_rng(N * pairs)
    M = 2 * N + 1  # odd: the last pair's second row does not exist
    blob, W = make_weight_rowmajor(rng, M, K, qtype)
    x = rng.standard_normal((1, K)).astype(np.float32)  # (1, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    got = run_kernel(
        gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=32 * pairs, EPS=1e-5, RP=2, PAIRS=pairs, **SK),
        {"wq": blob, "x": x, "g": g, "y": M * 4}, ["wq", "x", "g", "y"], (ceil(ceil(M, 2), 2 * pairs), 1, 1), {"n_tokens": 1}, "y",
        features=variant,
    )  # fmt: skip
    close(got, (rms(x, g) @ W.T)[0], tol_for(variant))


@pytest.mark.parametrize("qtype,K,lanes", [(QT.Q8_0, 576, 4), (QT.Q8_0, 576, 1), (QT.Q4_1, 576, 16), (QT.Q6_K, 512, 2)],
                         ids=["q8_0-4", "q8_0-1", "q4_1-16", "q6_k-2"])  # fmt: skip
@pytest.mark.parametrize("variant", ["f32", "subgroups", "f16+subgroups"], indirect=True)
def test_decode_head_few_lanes_per_pair(gpu_device, variant, qtype, K, lanes):
    """The decode head's shape (builder.head_lanes): 256 invocations, `lanes` per row pair, so
    each invocation loops over several units (SmolLM2's Q8_0 head at K 576 on 4 lanes: 9 each;
    1 lane: all 36, no reduction; Q4_1 on 16: 2 lanes of 16 loop twice; Q6_K on 2: shuffles
    on lavapipe's 8-wide subgroups), many pairs per workgroup, the last workgroup past the
    rows; the logits and each workgroup's best candidate against numpy."""
    rng = np.random.default_rng(lanes * 31 + K)
    M = 2 * 700 + 1  # odd: the last pair has one row
    half = ceil(M, 2)
    pairs = 256 // lanes
    blob, W = make_weight_rowmajor(rng, M, K, qtype)
    x = rng.standard_normal((1, K)).astype(np.float32)
    g = rng.standard_normal(K).astype(np.float32)
    groups = ceil(half, pairs)
    got = run_kernel(
        gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=256, EPS=1e-5, LAST_ONLY=True, PAIRS=pairs, CAND=M, **SK),
        {"wq": blob, "x": x, "g": g, "y": (M + 2 * groups) * 4}, ["wq", "x", "g", "y"], (groups, 1, 1), {"n_tokens": 1}, "y",
        features=variant,
    )  # fmt: skip
    y, cand = got[:M], got[M:].reshape(groups, 2)
    close(y, (rms(x, g) @ W.T)[0], tol_for(variant))
    for gi in range(groups):
        p = np.arange(gi * pairs, min(half, (gi + 1) * pairs))
        rows = np.concatenate([p, p[p + half < M] + half])
        top = rows[y[rows] == y[rows].max()].min()
        assert (cand[gi, 1:].view(np.uint32)[0], cand[gi, 0]) == (top, y[top]), gi


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0, QT.F16], ids=lambda q: q.name)
@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("H,KV,hd,K,T,n_past", [(2, 1, 8, 32, 3, 0), (9, 3, 64, 576, 1, 7)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
@pytest.mark.parametrize("fused", [False, True])
def test_matmul_qkv_splitk(gpu_device, variant, qtype, neox, H, KV, hd, K, T, n_past, fused):
    """q, and the k / v cache rows, of the split-K qkv kernel (FUSED_NORM: on the f32 path)."""
    if fused and "shader-f16" in variant:
        pytest.skip("FUSED_NORM is for the f32 kernels")
    rng = np.random.default_rng(H * hd + T)
    NQ, NK = H * hd, KV * hd
    M = NQ + 2 * NK
    w = rng.standard_normal((M, K)).astype(np.float32)
    raw = w.astype(np.float16).view(np.uint8) if qtype == QT.F16 else quants.quantize(w, qtype)
    W = quants.dequantize(raw, qtype).reshape(M, K).astype(np.float32)  # (M, K)
    blob = repack(raw.reshape(M, -1)[qkv_pair_order(H, KV, hd, neox)], qtype, K, rowmajor=True)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    n_ctx, base = 16, 10000.0
    data = {"wq": blob, "x": x, "g": g, "rope": rope_table(n_ctx, hd, base), "q": T * NQ * 4,
            "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4}
    consts = dict(QTYPE=int(qtype), M=M, K=K, WG=64, EPS=1e-5, NQ=NQ, NK=NK, HD=hd, NEOX=neox, FUSED_NORM=fused, **SK)
    args = (["wq", "x", "g", "rope", "q", "kc", "vc"], (M // 2, T, 1), {"n_tokens": T, "n_past": n_past})
    kvt = np.float16 if "shader-f16" in variant else np.float32
    got_q = run_kernel(gpu_device, "matmul_qkv.wgsl", consts, data, *args, "q", features=variant).reshape(T, H, hd)
    kc = run_kernel(gpu_device, "matmul_qkv.wgsl", consts, data, *args, "kc", kvt, variant)
    vc = run_kernel(gpu_device, "matmul_qkv.wgsl", consts, data, *args, "vc", kvt, variant)
    kc = kc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, KV, hd)
    vc = vc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, NK)
    h = rms(x, g) @ W.T  # (T, M)
    pos = np.arange(n_past, n_past + T)
    tol = tol_for(variant)
    close(got_q, rope_ref(h[:, :NQ].reshape(T, H, hd), pos, base, neox), tol)
    close(kc[n_past : n_past + T], rope_ref(h[:, NQ : NQ + NK].reshape(T, KV, hd), pos, base, neox), tol)
    close(vc[n_past : n_past + T], h[:, NQ + NK :], tol)
    assert not kc[:n_past].any() and not kc[n_past + T :].any()


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
def test_dequant_embed_rowmajor(gpu_device, qtype):
    rng = np.random.default_rng(3)
    M, K = 33, 96
    blob, deq = make_weight_rowmajor(rng, M, K, qtype)
    ids = np.array([M - 1, 0, M // 2], dtype=np.uint32)
    got = run_kernel(
        gpu_device, "embed.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=64, ROWMAJOR=True),
        {"ids": ids, "wq": blob, "x": 3 * K * 4}, ["ids", "wq", "x"],
        (1, 3, 1), {"n_tokens": 3}, "x",
    ).reshape(3, K)
    np.testing.assert_allclose(got, deq[ids], rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- 5- and 6-bit types
# Q5_0 and the K-quants (Q4_K, Q5_K, Q6_K), unpacked at load into 32-element blocks with their
# high bits apart (builder.split_blocks). K-quant rows are a multiple of 256 values. Every
# kernel that reads weights, in both layouts and every variant; the dequantized reference is
# gguf.quants.dequantize of the same bytes.

SPLIT_QTYPES = [QT.Q5_0, QT.Q4_K, QT.Q5_K, QT.Q6_K]
LAYOUTS = ["rows", "splitk"]


def weight_for(rng, M, K, qtype, layout):
    return make_weight(rng, M, K, qtype, rowmajor=layout == "splitk")


@pytest.mark.parametrize("qtype", SPLIT_QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_dequant_embed_split_types(gpu_device, qtype, layout):
    rng = np.random.default_rng(int(qtype))
    M, K = 37, 512
    blob, deq = weight_for(rng, M, K, qtype, layout)
    ids = np.array([M - 1, 0, M // 2], dtype=np.uint32)
    got = run_kernel(
        gpu_device, "embed.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=64, ROWMAJOR=layout == "splitk"),
        {"ids": ids, "wq": blob, "x": 3 * K * 4}, ["ids", "wq", "x"],
        (1, 3, 1), {"n_tokens": 3}, "x",
    ).reshape(3, K)
    np.testing.assert_allclose(got, deq[ids], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("qtype", SPLIT_QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T", [(7, 256, 3), (131, 768, 5)])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_split_types(gpu_device, variant, qtype, M, K, T, layout):
    rng = np.random.default_rng(M + K + int(qtype))
    blob, W = weight_for(rng, M, K, qtype, layout)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    y0 = rng.standard_normal((T, M)).astype(np.float32)  # (T, M)
    if layout == "splitk":
        consts, groups = dict(WG=64, **SK), (ceil(M, 2), T, 1)
    else:
        consts, groups = dict(WG=64, TT=4), (ceil(ceil(M, 2), 64), ceil(T, 4), 1)
    got = run_kernel(
        gpu_device, "matmul.wgsl", dict(QTYPE=int(qtype), M=M, K=K, ADD=True, **consts),
        {"wq": blob, "x": x, "y": y0}, ["wq", "x", "y"], groups, {"n_tokens": T}, "y", features=variant,
    ).reshape(T, M)
    close(got, x @ W.T + y0, tol_for(variant))


@pytest.mark.parametrize("qtype", SPLIT_QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_norm_split_types(gpu_device, variant, qtype, layout):
    rng = np.random.default_rng(int(qtype) + 1)
    M, K, T = 45, 512, 3
    blob, W = weight_for(rng, M, K, qtype, layout)
    x = rng.standard_normal((T, K)).astype(np.float32) * 3  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    if layout == "splitk":
        consts, groups = dict(WG=64, RP=2, **SK), (ceil(ceil(M, 2), 2), T, 1)
    else:
        consts, groups = dict(WG=64, TT=4), (ceil(ceil(M, 2), 64), ceil(T, 4), 1)
    got = run_kernel(
        gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, EPS=1e-5, **consts),
        {"wq": blob, "x": x, "g": g, "y": T * M * 4}, ["wq", "x", "g", "y"], groups, {"n_tokens": T}, "y", features=variant,
    ).reshape(T, M)
    close(got, rms(x, g) @ W.T, tol_for(variant))


@pytest.mark.parametrize("qtype", SPLIT_QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_swiglu_split_types(gpu_device, variant, qtype, layout):
    rng = np.random.default_rng(int(qtype) + 2)
    N, K, T = 40, 256, 2
    blob, W = weight_for(rng, 2 * N, K, qtype, layout)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    if layout == "splitk":
        consts, groups = dict(WG=64, **SK), (N, T, 1)
    else:
        consts, groups = dict(WG=64, TT=4), (ceil(N, 64), ceil(T, 4), 1)
    got = run_kernel(
        gpu_device, "matmul_swiglu.wgsl", dict(QTYPE=int(qtype), M=2 * N, K=K, EPS=1e-5, **consts),
        {"wq": blob, "x": x, "g": g, "y": T * N * 4}, ["wq", "x", "g", "y"], groups, {"n_tokens": T}, "y", features=variant,
    ).reshape(T, N)
    h = rms(x, g) @ W.T  # (T, 2N)
    a, u = np.clip(h[:, :N], -60, None), h[:, N:]
    close(got, a / (1 + np.exp(-a)) * u, tol_for(variant))


@pytest.mark.parametrize("qtype", SPLIT_QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_qkv_split_types(gpu_device, variant, qtype, layout):
    rng = np.random.default_rng(int(qtype) + 3)
    H, KV, hd, K, T, n_past, n_ctx = 2, 1, 32, 256, 2, 3, 8
    NQ, NK = H * hd, KV * hd
    M = NQ + 2 * NK
    raw = quantize(rng.standard_normal((M, K)).astype(np.float32), qtype)  # (M, row bytes)
    W = quants.dequantize(raw, qtype).reshape(M, K)  # (M, K)
    splitk = layout == "splitk"
    blob = repack(raw[qkv_pair_order(H, KV, hd, True)], qtype, K, rowmajor=splitk)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    consts = dict(QTYPE=int(qtype), M=M, K=K, WG=64, EPS=1e-5, NQ=NQ, NK=NK, HD=hd, NEOX=True)
    consts |= SK if splitk else dict(TT=4)
    groups = (M // 2, T, 1) if splitk else (ceil(M // 2, 64), ceil(T, 4), 1)
    data = {"wq": blob, "x": x, "g": g, "rope": rope_table(n_ctx, hd, 1e4), "q": T * NQ * 4,
            "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4}
    args = (["wq", "x", "g", "rope", "q", "kc", "vc"], groups, {"n_tokens": T, "n_past": n_past})
    kvt = np.float16 if "shader-f16" in variant else np.float32
    got_q = run_kernel(gpu_device, "matmul_qkv.wgsl", consts, data, *args, "q", features=variant).reshape(T, H, hd)
    vc = run_kernel(gpu_device, "matmul_qkv.wgsl", consts, data, *args, "vc", kvt, variant)
    h = rms(x, g) @ W.T  # (T, M)
    pos = np.arange(n_past, n_past + T)
    close(got_q, rope_ref(h[:, :NQ].reshape(T, H, hd), pos, 1e4, True), tol_for(variant))
    vc = vc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, NK)  # (n_ctx, NK)
    close(vc[n_past : n_past + T], h[:, NQ + NK :], tol_for(variant))


# ----------------------------------------------------------------------------- architectures
# What qwen2 and gemma3 add: q/k/v biases and per-head q/k RMSNorm before RoPE (qkv_rope.wgsl),
# post-norms added to the residual (add_norm.wgsl), GeGLU (matmul_swiglu ACT 1), sliding-window
# attention and a query scale (attention WINDOW, SCALE), soft-capped logits written at an
# offset of a wider output (matmul_norm CAP, YS, YO: row chunks of a big head), and row chunks
# of the embedding table (embed ROW0, CHUNKED).


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("bias,qk_norm", [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_qkv_rope(gpu_device, variant, neox, bias, qk_norm):
    rng = np.random.default_rng(7 + bias + 2 * qk_norm)
    H, KV, hd, T, n_past, n_ctx, base, eps = 4, 2, 32, 3, 5, 12, 1e4, 1e-6
    NQ, NK = H * hd, KV * hd
    qkv = rng.standard_normal((T, NQ + 2 * NK)).astype(np.float32) * 2  # (T, NQ + 2NK)
    b = rng.standard_normal(NQ + 2 * NK).astype(np.float32)  # (NQ + 2NK,)
    qn, kn = (rng.standard_normal(hd).astype(np.float32) for _ in range(2))  # (hd,) each
    aux = np.concatenate(([b] if bias else []) + ([qn, kn] if qk_norm else []) + [np.zeros(4, np.float32)])
    data = {"qkv": qkv, "aux": aux, "rope": rope_table(n_ctx, hd, base), "q": T * NQ * 4,
            "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4}
    consts = dict(NQ=NQ, NK=NK, HD=hd, NEOX=neox, HAS_BIAS=bias, QK_NORM=qk_norm, EPS=eps, WG=64)
    args = (["qkv", "aux", "rope", "q", "kc", "vc"], (H + 2 * KV, T, 1), {"n_tokens": T, "n_past": n_past})
    kvt = np.float16 if "shader-f16" in variant else np.float32
    got_q = run_kernel(gpu_device, "qkv_rope.wgsl", consts, data, *args, "q", features=variant).reshape(T, H, hd)
    kc = run_kernel(gpu_device, "qkv_rope.wgsl", consts, data, *args, "kc", kvt, variant)
    vc = run_kernel(gpu_device, "qkv_rope.wgsl", consts, data, *args, "vc", kvt, variant)
    h = qkv + (b if bias else 0)  # (T, NQ + 2NK)
    q = h[:, :NQ].reshape(T, H, hd)  # (T, H, hd)
    k = h[:, NQ : NQ + NK].reshape(T, KV, hd)  # (T, KV, hd)
    if qk_norm:
        q, k = rms(q, qn, eps), rms(k, kn, eps)
    pos = np.arange(n_past, n_past + T)
    tol = 2e-3 if "shader-f16" in variant else 2e-4  # the f16 KV cache rounds k and v
    close(got_q, rope_ref(q, pos, base, neox), 2e-4)
    kc = kc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, KV, hd)  # (n_ctx, KV, hd)
    vc = vc[: n_ctx * NK].astype(np.float32).reshape(n_ctx, NK)  # (n_ctx, NK)
    close(kc[n_past : n_past + T], rope_ref(k, pos, base, neox), tol)
    close(vc[n_past : n_past + T], h[:, NQ + NK :], tol)
    assert not kc[:n_past].any() and not vc[n_past + T :].any()


@pytest.mark.parametrize("K,T", [(64, 1), (640, 3)])
@pytest.mark.parametrize("variant", SG, indirect=True)
def test_add_norm(gpu_device, variant, K, T):
    rng = np.random.default_rng(K + T)
    x = rng.standard_normal((T, K)).astype(np.float32) * 5  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    res = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    got = run_kernel(
        gpu_device, "add_norm.wgsl", dict(K=K, EPS=1e-6, WG=64), {"x": x, "g": g, "res": res},
        ["x", "g", "res"], (1, T, 1), {"n_tokens": T}, "res", features=variant,
    ).reshape(T, K)
    close(got, res + rms(x, g, 1e-6))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_matmul_geglu(gpu_device, variant, layout):
    rng = np.random.default_rng(21)
    N, K, T = 70, 256, 3
    blob, W = weight_for(rng, 2 * N, K, QT.Q5_0, layout)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    if layout == "splitk":
        consts, groups = dict(WG=64, **SK), (N, T, 1)
    else:
        consts, groups = dict(WG=64, TT=4), (ceil(N, 64), ceil(T, 4), 1)
    got = run_kernel(
        gpu_device, "matmul_swiglu.wgsl", dict(QTYPE=int(QT.Q5_0), M=2 * N, K=K, EPS=1e-5, ACT=1, **consts),
        {"wq": blob, "x": x, "g": g, "y": T * N * 4}, ["wq", "x", "g", "y"], groups, {"n_tokens": T}, "y", features=variant,
    ).reshape(T, N)
    h = rms(x, g) @ W.T  # (T, 2N)
    a, u = h[:, :N], h[:, N:]  # (T, N) each
    gelu = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))  # (T, N)
    close(got, gelu * u, tol_for(variant))


@pytest.mark.parametrize("shader,wg,gq", [("attention.wgsl", 64, 1), ("attention_split.wgsl", 256, 1), ("attention_split.wgsl", 256, 4)])
@pytest.mark.parametrize("window,T,n_past", [(4, 3, 6), (512, 2, 600), (8, 5, 0)])
@pytest.mark.parametrize("variant", ALL, indirect=True)
def test_attention_window_and_scale(gpu_device, variant, shader, wg, gq, window, T, n_past):
    rng = np.random.default_rng(window + T)
    H, KV, hd, scale = 4, 1, 256, 0.0625
    n_ctx = n_past + T + 2
    q = rng.standard_normal((T, H, hd)).astype(np.float32)  # (T, H, hd)
    kc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    vc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    if "shader-f16" in variant:
        kc, vc = kc.astype(np.float16), vc.astype(np.float16)
    got = run_kernel(
        gpu_device, shader, dict(NH=H, NKV=KV, HD=hd, WG=wg, WINDOW=window, SCALE=scale, **({"GQ": gq} if gq > 1 else {})),
        {"q": q, "kc": kc, "vc": vc, "o": T * H * hd * 4}, ["q", "kc", "vc", "o"],
        (H // gq, T, 1), {"n_tokens": T, "n_past": n_past}, "o", features=variant,
    ).reshape(T, H, hd)
    kc, vc = kc.astype(np.float32), vc.astype(np.float32)
    want = np.zeros_like(q)
    for t in range(T):
        p = n_past + t
        lo = max(0, p - window + 1)  # llama.cpp: key masked when p - p_key >= window
        for h in range(H):
            s = kc[lo : p + 1, 0] @ q[t, h] * scale  # (S,)
            e = np.exp(s - s.max())
            want[t, h] = (e / e.sum()) @ vc[lo : p + 1, 0]  # (hd,)
    close(got, want, 1e-4)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("variant", ["f32", "f16+subgroups"], indirect=True)
def test_matmul_norm_chunks_write_one_capped_output(gpu_device, variant, layout):
    """A head split in two row chunks fills one (T, V) output through YS / YO, soft-capped."""
    rng = np.random.default_rng(31)
    V, K, T, cap = 90, 256, 2, 3.0
    x = rng.standard_normal((T, K)).astype(np.float32) * 2  # (T, K)
    g = rng.standard_normal(K).astype(np.float32)  # (K,)
    parts, Ws = [], []
    for rows in (56, 34):
        blob, W = weight_for(rng, rows, K, QT.Q8_0, layout)
        parts.append((blob, rows))
        Ws.append(W)
    y = np.zeros((T, V), np.float32)
    o = 0
    for blob, rows in parts:
        if layout == "splitk":
            consts, groups = dict(WG=64, **SK), (ceil(rows, 2), T, 1)
        else:
            consts, groups = dict(WG=64, TT=4), (ceil(ceil(rows, 2), 64), ceil(T, 4), 1)
        y = run_kernel(
            gpu_device, "matmul_norm.wgsl", dict(QTYPE=int(QT.Q8_0), M=rows, K=K, EPS=1e-5, YS=V, YO=o, CAP=cap, **consts),
            {"wq": blob, "x": x, "g": g, "y": y}, ["wq", "x", "g", "y"], groups, {"n_tokens": T}, "y", features=variant,
        ).reshape(T, V)
        o += rows
    want = cap * np.tanh(rms(x, g) @ np.concatenate(Ws).T / cap)  # (T, V)
    close(y, want, tol_for(variant))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_embed_row_chunks(gpu_device, layout):
    rng = np.random.default_rng(41)
    K, scale = 64, 8.0
    ids = np.array([0, 49, 50, 99, 7], dtype=np.uint32)
    x = np.full((len(ids), K), -1.0, np.float32)
    full = []
    for row0, rows in ((0, 50), (50, 50)):
        blob, deq = weight_for(rng, rows, K, QT.Q8_0, layout)
        full.append(deq)
        x = run_kernel(
            gpu_device, "embed.wgsl", dict(QTYPE=int(QT.Q8_0), M=rows, K=K, WG=64, ROWMAJOR=layout == "splitk",
                                           SCALE=scale, ROW0=row0, CHUNKED=True),
            {"ids": ids, "wq": blob, "x": x}, ["ids", "wq", "x"], (1, len(ids), 1), {"n_tokens": len(ids)}, "x",
        ).reshape(len(ids), K)
    np.testing.assert_allclose(x, np.concatenate(full)[ids] * scale, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0], ids=lambda q: q.name)
@pytest.mark.parametrize("pairs,rp", [(1, 1), (2, 2), (4, 4)])
@pytest.mark.parametrize("variant", ["f32", "subgroups", "f16+subgroups"], indirect=True)
def test_head_candidates_feed_the_greedy_sampler(gpu_device, variant, qtype, pairs, rp):
    """CAND (matmul_norm.wgsl) + NC (sample.wgsl), a decode step's head and greedy sampler on
    GPUs: each head workgroup leaves its best (logit, id); the sampler's argmax over those is the
    argmax over all logits, ties to the lowest id (the best row copied to a lower id in another
    workgroup and to the other row of a pair), and with a repetition penalty on a candidate the
    sampler reads every logit instead, as without candidates."""
    rng = np.random.default_rng(7 * pairs + rp)
    M, K = 1001, 64  # odd: the last pair has one row
    half = ceil(M, 2)
    raw = quantize(rng.standard_normal((M, K)).astype(np.float32), qtype)  # (M, bytes per row)
    x = rng.standard_normal((1, K)).astype(np.float32)
    g = rng.standard_normal(K).astype(np.float32)
    W = quants.dequantize(raw, qtype).reshape(M, K).astype(np.float32)
    best = int(np.argmax((rms(x, g) @ W.T)[0]))
    twin = best - half if best >= half else (best + half if best + half < M else 5)  # the other row of its pair
    # workgroup 0's first lane group sees row `half` (pair 0's second row) before row `pairs`
    # (the pair it takes next, rp > 1): the lower id must win there too
    copies = sorted({best, twin, M - 2, half, pairs if rp > 1 else 7})
    for r in copies:
        raw[r] = raw[best]
    blob = repack(raw.reshape(M, -1), qtype, K, rowmajor=True)
    groups = ceil(half, rp * pairs)
    head = ("matmul_norm.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=32 * pairs, EPS=1e-5, LAST_ONLY=True, RP=rp,
                                     PAIRS=pairs, CAND=M, **SK), ["wq", "x", "g", "y"], (groups, 1, 1))  # fmt: skip
    data = {"wq": blob, "x": x, "g": g, "y": (M + 2 * groups) * 4, "hist": np.zeros(5, np.uint32), "out": 4}
    logits = run_program(gpu_device, data, [head], {"n_tokens": 1}, "y", variant)
    y, cand = logits[:M], logits[M:].reshape(groups, 2)
    ids = cand[:, 1].view(np.uint32)
    for gi in range(groups):  # each workgroup's own rows: rows p and p + half for its pairs
        p = np.arange(gi * rp * pairs, min(half, (gi + 1) * rp * pairs))
        rows = np.concatenate([p, p[p + half < M] + half])
        top = rows[y[rows] == y[rows].max()].min()
        assert (ids[gi], cand[gi, 0]) == (top, y[top]), gi
    want = int(np.argmax(y))  # numpy: the first of equal maxima
    assert want == copies[0]
    for nc in (groups, 0):  # with the candidates and the full pass over the logits
        samp = ("sample.wgsl", dict(V=M, NC=nc, CAND=M), ["y", "hist", "out"], (1, 1, 1))
        st = dict(n_tokens=1, temperature=0.0, top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0, n_hist=0)
        assert int(run_program(gpu_device, data, [head, samp], st, "out", variant, np.uint32)[0]) == want
        # the penalty lowers the best row's copies: every logit is read (the ids differ)
        pen = dict(st, repeat_penalty=1e6, n_hist=len(copies))
        data["hist"] = np.array(copies, np.uint32)
        y2 = y.copy()
        y2[copies] = y[best] / 1e6 if y[best] > 0 else y[best] * 1e6
        got = int(run_program(gpu_device, data, [head, samp], pen, "out", variant, np.uint32)[0])
        assert got == int(np.argmax(y2)) and got not in copies
        data["hist"] = np.zeros(len(copies), np.uint32)
