"""The speed-oriented kernels against numpy: flash-decoding attention merged into the output
projection (attention_flash.wgsl + matmul_attn.wgsl), and the tiled prefill matmuls
(matmul_tiled.wgsl), through small plans on the native executor. The plans that use them are
checked whole-model in test_native.py (split-K layout parity)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest_gpu import make_weight_rowmajor, rope_ref, run_program
from gguf import GGMLQuantizationType as QT
from gguf import quants

from companion.gpu._flash import FLASH_S, FLASH_WG, MERGE_WG, part_bytes
from companion.gpu._tiled import tile_split
from companion.gpu.builder import STEP_SIZE, BuiltPlan, PlanWriter, repack, splitk_wg, uniform_block
from companion.gpu.executor import Executor
from companion.gpu.plan import Plan, Program
from companion.testing import quantize

pytestmark = pytest.mark.gpu

VARIANTS = {"f32": (), "subgroups": ("subgroups",), "f16+subgroups": ("shader-f16", "subgroups")}


def close(a, b, tol: float):
    scale = max(1.0, float(np.abs(b).max()))
    np.testing.assert_allclose(a, b, atol=tol * scale, rtol=0)


def attention_ref(q, kc, vc, n_kv: int, window: int = 0, scale: float = 0.0) -> np.ndarray:
    """(H, hd) attention of one query at position n_kv - 1 over keys [lo, n_kv)."""
    H, hd = q.shape
    KV = kc.shape[1]
    lo = max(0, n_kv - window) if window else 0
    out = np.zeros_like(q)
    for h in range(H):
        kv = h // (H // KV)
        s = kc[lo:n_kv, kv] @ q[h] * (scale or 1 / np.sqrt(hd))  # (S,)
        p = np.exp(s - s.max())
        out[h] = (p / p.sum()) @ vc[lo:n_kv, kv]  # (hd,)
    return out


@pytest.mark.parametrize("H,KV,hd,n_past", [(9, 3, 64, 0), (9, 3, 64, 143), (9, 3, 64, 1100), (2, 1, 64, 2 * FLASH_S * FLASH_WG + 5),
                                             (4, 1, 256, 300), (4, 2, 32, 63)])
@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0], ids=lambda q: q.name)
@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_flash_attention_merged_into_output(gpu_device, variant, H, KV, hd, n_past, qtype):
    rng = np.random.default_rng(H * 1000 + n_past)
    n_ctx = n_past + 3
    M, K = 96, H * hd
    q = rng.standard_normal((H, hd)).astype(np.float32)  # (H, hd)
    kc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32) * 0.5  # (n_ctx, KV, hd)
    vc = rng.standard_normal((n_ctx, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    if "shader-f16" in variant:
        kc, vc = kc.astype(np.float16), vc.astype(np.float16)
    blob, Wo = make_weight_rowmajor(rng, M, K, qtype)
    y0 = rng.standard_normal(M).astype(np.float32)  # (M,) residual
    shared = dict(S=FLASH_S, FLASH_WG=FLASH_WG)
    got = run_program(
        gpu_device,
        {"q": q, "kc": kc, "vc": vc, "part": part_bytes(H, hd), "wq": blob, "x": y0},
        [("attention_flash.wgsl", dict(NH=H, NKV=KV, HD=hd, WG=FLASH_WG, **shared), ["q", "kc", "vc", "part"], (H, FLASH_S, 1)),
         ("matmul_attn.wgsl", dict(QTYPE=int(qtype), M=M, K=K, WG=max(splitk_wg(qtype, K), MERGE_WG), ROWMAJOR=True, NH=H, HD=hd, **shared),
          ["wq", "part", "x"], (M // 2, 1, 1))],
        {"n_past": n_past, "n_tokens": 1}, "x", variant,
    )  # fmt: skip
    att = attention_ref(q, kc.astype(np.float32), vc.astype(np.float32), n_past + 1)  # (H, hd)
    want = y0 + Wo @ att.reshape(-1)  # (M,)
    close(got, want, 1.5e-2 if "shader-f16" in variant else 2e-4)


@pytest.mark.parametrize("window,n_past", [(4, 9), (512, 600), (100, 2000)])
def test_flash_attention_window_and_scale(gpu_device, window, n_past):
    rng = np.random.default_rng(window)
    H, KV, hd, scale, M = 4, 1, 256, 0.0625, 64
    K = H * hd
    q = rng.standard_normal((H, hd)).astype(np.float32)  # (H, hd)
    kc = rng.standard_normal((n_past + 2, KV, hd)).astype(np.float32) * 0.3  # (n_ctx, KV, hd)
    vc = rng.standard_normal((n_past + 2, KV, hd)).astype(np.float32)  # (n_ctx, KV, hd)
    blob, Wo = make_weight_rowmajor(rng, M, K, QT.Q8_0)
    shared = dict(S=FLASH_S, FLASH_WG=FLASH_WG, WINDOW=window)
    got = run_program(
        gpu_device,
        {"q": q, "kc": kc, "vc": vc, "part": part_bytes(H, hd), "wq": blob, "x": M * 4},
        [("attention_flash.wgsl", dict(NH=H, NKV=KV, HD=hd, WG=FLASH_WG, SCALE=scale, **shared), ["q", "kc", "vc", "part"], (H, FLASH_S, 1)),
         ("matmul_attn.wgsl", dict(QTYPE=int(QT.Q8_0), M=M, K=K, WG=max(splitk_wg(QT.Q8_0, K), MERGE_WG), ROWMAJOR=True, NH=H, HD=hd, **shared),
          ["wq", "part", "x"], (M // 2, 1, 1))],
        {"n_past": n_past, "n_tokens": 1}, "x",
    )  # fmt: skip
    att = attention_ref(q, kc, vc, n_past + 1, window, scale)  # (H, hd)
    close(got, Wo @ att.reshape(-1), 2e-4)


QTYPES = [QT.F32, QT.F16, QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.Q5_0, QT.Q4_K, QT.Q5_K, QT.Q6_K]


def rms(x, g, eps=1e-5):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + np.float32(eps)) * g


def kquant_k(qtype: QT, K: int) -> int:
    """K rounded up to the type's super-block (256 for K-quants)."""
    return -(-K // 256) * 256 if qtype in (QT.Q4_K, QT.Q5_K, QT.Q6_K) else K


def tiled_tol(variant) -> float:
    return 1.5e-2 if "shader-f16" in variant else 2e-4


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("M,K,T", [(96, 576, 16), (577, 64, 21), (63, 96, 3), (130, 1536, 40)])
@pytest.mark.parametrize("add", [False, True])
@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_matmul_tiled(gpu_device, variant, qtype, M, K, T, add):
    K = kquant_k(qtype, K)
    rng = np.random.default_rng(M + K + T)
    blob, W = make_weight_rowmajor(rng, M, K, qtype)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    y0 = rng.standard_normal((T, M)).astype(np.float32)  # (T, M)
    got = run_program(
        gpu_device, {"wq": blob, "x": x, "y": y0},
        [("matmul_tiled.wgsl", dict(QTYPE=int(qtype), M=M, K=K, KS=tile_split(K)[0], KB=tile_split(K)[1], ROWMAJOR=True, ADD=add),
          ["wq", "x", "y"], (-(-((M + 1) // 2) // 32), -(-T // 16), 1))],
        {"n_tokens": T}, "y", variant,
    ).reshape(T, M)  # fmt: skip
    want = x @ W.T + (y0 if add else 0)  # (T, M)
    close(got, want, tiled_tol(variant))


@pytest.mark.parametrize("qtype", QTYPES, ids=lambda q: q.name)
@pytest.mark.parametrize("N,K,T", [(1536, 576, 17), (40, 64, 5), (96, 96, 33)])
@pytest.mark.parametrize("act", [0, 1])
@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_matmul_swiglu_tiled(gpu_device, variant, qtype, N, K, T, act):
    K = kquant_k(qtype, K)
    rng = np.random.default_rng(N + K + T)
    blob, W = make_weight_rowmajor(rng, 2 * N, K, qtype)
    x = rng.standard_normal((T, K)).astype(np.float32) * 3  # (T, K)
    g = (1 + 0.1 * rng.standard_normal(K)).astype(np.float32)  # (K,)
    got = run_program(
        gpu_device, {"wq": blob, "x": x, "g": g, "y": T * N * 4},
        [("matmul_swiglu_tiled.wgsl", dict(QTYPE=int(qtype), M=2 * N, K=K, KS=tile_split(K)[0], KB=tile_split(K)[1], ROWMAJOR=True,
                                           EPS=1e-5, ACT=act),
          ["wq", "x", "g", "y"], (-(-N // 32), -(-T // 16), 1))],
        {"n_tokens": T}, "y", variant,
    ).reshape(T, N)  # fmt: skip
    h = rms(x, g) @ W.T  # (T, 2N)
    a, u = h[:, :N], h[:, N:]  # (T, N) each
    if act:
        a = 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3)))
    else:
        a = a / (1 + np.exp(-a))
    close(got, a * u, tiled_tol(variant))


@pytest.mark.parametrize("qtype", [QT.Q4_1, QT.Q8_0, QT.Q6_K], ids=lambda q: q.name)
@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("T,n_past", [(21, 0), (5, 7)])
@pytest.mark.parametrize("variant", list(VARIANTS), indirect=True)
def test_matmul_qkv_tiled(gpu_device, variant, qtype, neox, T, n_past):
    from companion.gpu.builder import qkv_pair_order, rope_table

    H, KV, hd = 9, 3, 64
    K = kquant_k(qtype, 576)
    NQ, NK = H * hd, KV * hd
    M = NQ + 2 * NK
    rng = np.random.default_rng(T + n_past + neox)
    w = rng.standard_normal((M, K)).astype(np.float32)  # (M, K) rows q | k | v
    raw = quantize(w, qtype)
    W = quants.dequantize(raw, qtype).reshape(M, K).astype(np.float32)  # (M, K)
    order = qkv_pair_order(H, KV, hd, neox)
    blob = repack(raw.reshape(M, -1)[order], qtype, K, rowmajor=True)
    x = rng.standard_normal((T, K)).astype(np.float32)  # (T, K)
    g = (1 + 0.1 * rng.standard_normal(K)).astype(np.float32)  # (K,)
    n_ctx = n_past + T + 2
    consts = dict(QTYPE=int(qtype), M=M, K=K, KS=tile_split(K)[0], KB=tile_split(K)[1], ROWMAJOR=True, EPS=1e-5, NQ=NQ, NK=NK, HD=hd, NEOX=neox)
    data = {"wq": blob, "x": x, "g": g, "rope": rope_table(n_ctx, hd, 10000.0), "q": T * NQ * 4, "kc": n_ctx * NK * 4, "vc": n_ctx * NK * 4}
    disp = [("matmul_qkv_tiled.wgsl", consts, ["wq", "x", "g", "rope", "q", "kc", "vc"], (-(-(M // 2) // 32), -(-T // 16), 1))]
    kvt = np.float16 if "shader-f16" in variant else np.float32
    step = {"n_tokens": T, "n_past": n_past}
    q = run_program(gpu_device, data, disp, step, "q", variant).reshape(T, H, hd)
    kc = run_program(gpu_device, data, disp, step, "kc", variant, kvt)[: n_ctx * NK].astype(np.float32).reshape(n_ctx, KV, hd)
    vc = run_program(gpu_device, data, disp, step, "vc", variant, kvt)[: n_ctx * NK].astype(np.float32).reshape(n_ctx, NK)
    h = rms(x, g) @ W.T  # (T, M)
    pos = np.arange(n_past, n_past + T)

    def rope(v):  # (T, heads, hd)
        return rope_ref(v, pos, 10000.0, neox)

    tol = tiled_tol(variant)
    close(q, rope(h[:, :NQ].reshape(T, H, hd)), tol)
    close(kc[n_past : n_past + T], rope(h[:, NQ : NQ + NK].reshape(T, KV, hd)), tol)
    close(vc[n_past : n_past + T], h[:, NQ + NK :], tol)
    assert not kc[:n_past].any() and not kc[n_past + T :].any()


MINE = ("attention_flash.wgsl", "matmul_attn.wgsl", "matmul_tiled.wgsl", "matmul_swiglu_tiled.wgsl", "matmul_qkv_tiled.wgsl",
        "matmul_swiglu.wgsl", "matmul_qkv.wgsl", "matmul_norm.wgsl")  # the last three: decode with PAIRS

COMPILE_JS = """async (mods) => {
  const adapter = await navigator.gpu.requestAdapter();
  const device = await adapter.requestDevice({requiredFeatures: adapter.features.has("subgroups") ? ["subgroups"] : []});
  const out = [];
  for (const m of mods) {
    device.pushErrorScope("validation");
    const mod = device.createShaderModule({code: m.code});
    const info = await mod.getCompilationInfo();
    const msgs = info.messages.filter((x) => x.type === "error").map((x) => `${x.lineNum}:${x.linePos} ${x.message}`);
    try {
      await device.createComputePipelineAsync({layout: "auto", compute: {module: mod, entryPoint: "main", constants: m.constants}});
    } catch (e) { msgs.push(String(e.message || e)); }
    const err = await device.popErrorScope();
    if (err) msgs.push(err.message);
    out.push([m.name, msgs]);
  }
  return out;
}"""


def test_new_kernels_build_in_chromium(chromium_required, page, tmp_path):
    """The page's executor runs the same plan on GPUs: Tint (stricter uniformity analysis than
    naga) must accept these kernels and their override-sized workgroups, f32 and subgroups."""
    from companion.gpu import shaders
    from companion.gpu.builder import build_plan
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    model = load_model(str(write_tiny_gguf(tmp_path / "tiny.gguf", n_layer=1, context_length=512)))
    mods, seen = [], set()
    # f32, subgroups without a probe, and every kernel of the probed-subgroup path (SG 32 as on
    # NVIDIA): its reductions must pass Tint's uniformity analysis too. Each (module, constants)
    # once: the plans share some, and SwiftShader takes seconds a pipeline
    for allow, sg in (("none", None), ("subgroups", None), ("subgroups", 32)):
        plan = build_plan(model, n_ctx=256, max_batch=32, features=["subgroups"], allow=allow, layout="splitk", subgroup_size=sg).plan
        for p in plan.pipelines:
            if p.shader in MINE or (sg and "_reduce.wgsl" in p.includes):
                assert p.constants.get("SG") == (sg if "_reduce.wgsl" in p.includes else None)
                _, src = shaders.pipeline_module(p)  # as served to the page (enable directives included)
                key = (src.code, tuple(sorted(p.constants.items())))
                if key not in seen:
                    seen.add(key)
                    mods.append({"name": p.name, "code": src.code, "constants": dict(p.constants)})
    assert {m["name"].split("|")[0] + ".wgsl" for m in mods} >= set(MINE)
    assert {"sample.wgsl", "qkv_rope.wgsl", "attention_split.wgsl"} & {m["name"].split("|")[0] + ".wgsl" for m in mods}
    import http.server
    import threading

    (tmp_path / "index.html").write_text("<!doctype html><title>kernels</title>")
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # loopback: a secure context
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        if not page.evaluate("!!navigator.gpu"):
            pytest.skip("this Chromium offers no navigator.gpu")
        bad = [(n, msgs) for n, msgs in page.evaluate(COMPILE_JS, mods) if msgs]
    finally:
        server.shutdown()
        server.server_close()
    assert not bad, bad
