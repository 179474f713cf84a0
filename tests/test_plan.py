"""The plan as data: JSON round trip, limits of the smallest target (headless Chromium's
SwiftShader), the repacked weight layout, and the shader include rule. No GPU needed."""

from __future__ import annotations

import re

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT
from gguf import quants

from companion.gpu import shaders
from companion.gpu.builder import SHADER_BINDINGS, build_plan, qkv_pair_order, repack
from companion.gpu.plan import PLAN_VERSION, Count, Plan

SWIFTSHADER = {  # the smallest limits among our targets
    "max-storage-buffer-binding-size": 128 << 20,
    "max-compute-invocations-per-workgroup": 256,
    "min-storage-buffer-offset-alignment": 256,
    "max-storage-buffers-per-shader-stage": 8,
    "max-compute-workgroups-per-dimension": 65535,
    "max-compute-workgroup-storage-size": 16384,
}


@pytest.fixture(scope="module")
def built():
    from companion.model import load_model

    return build_plan(load_model(None), n_ctx=256, max_batch=32)


def test_plan_json_round_trip(built):
    text = built.plan.to_json()
    again = Plan.from_json(text)
    assert again == built.plan
    assert again.to_json() == text
    assert again.version == PLAN_VERSION


def test_export_is_self_contained(built, tmp_path):
    """plan.json plus blobs/ plus the GGUF is all a second executor needs."""
    built.export(tmp_path)
    plan = Plan.from_json((tmp_path / "plan.json").read_text())
    for b in plan.buffers:
        if b.source is not None and b.source.kind == "blob":
            assert (tmp_path / "blobs" / f"{b.source.name}.bin").stat().st_size <= b.size
    for p in plan.pipelines:
        assert p.shader in shaders.list_shaders()


def test_plan_version_is_checked(built):
    data = built.plan.model_dump()
    data["version"] = PLAN_VERSION + 1
    with pytest.raises(ValueError, match="version"):
        Plan.from_json(Plan.model_validate(data).to_json())


def test_plan_shape(built):
    plan = built.plan
    assert set(plan.programs) == {"prefill", "prefill_all", "decode", "sample", "sample_decode", "sample_chain"}
    n_layer = int(plan.model["n_layer"])
    # fused: embed + 5 per block (norm+qkv+rope, attention, out+residual, norm+gate+up+swiglu, down+residual) + head
    assert plan.dispatch_count("decode") == 1 + 5 * n_layer + 1
    assert plan.programs["sample"].readback.size == 4
    names = {b.name for b in plan.buffers}
    for prog in plan.programs.values():
        for d in prog.dispatches:
            assert {b.buffer for b in d.bindings} <= names


def test_plan_fits_swiftshader_limits(built):
    plan = built.plan
    for b in plan.buffers:
        assert b.size <= SWIFTSHADER["max-storage-buffer-binding-size"], b.name
        assert b.size % 4 == 0
    pipes = {p.name: p for p in plan.pipelines}
    for prog in plan.programs.values():
        vars = dict(prog.max_vars)
        for d in prog.dispatches:
            assert all(b.offset % SWIFTSHADER["min-storage-buffer-offset-alignment"] == 0 for b in d.bindings)
            assert all(0 < c <= SWIFTSHADER["max-compute-workgroups-per-dimension"] for c in d.counts(vars))
            p = pipes[d.pipeline]
            storage = sum(e.type != "uniform" for e in p.bindings)
            assert storage <= SWIFTSHADER["max-storage-buffers-per-shader-stage"]
            assert int(p.constants.get("WG", 64)) <= SWIFTSHADER["max-compute-invocations-per-workgroup"]
    assert plan.features == []  # the f32 path needs no optional feature


def test_count_dims():
    assert Count(var="n_tokens", per=4).value({"n_tokens": 9}) == 3
    assert Count(var="n_tokens").value({"n_tokens": 1}) == 1


def test_weights_refer_to_gguf_or_blobs(built):
    for b in built.plan.buffers:
        if b.source is None:
            continue
        data = built.resolve(b)
        assert data.nbytes <= b.size
        if b.source.kind == "gguf":
            assert b.source.tensor.endswith("norm.weight")
        else:
            assert b.source.name in built.blobs


def _unpack(blob: np.ndarray, qtype: QT, M: int, K: int) -> np.ndarray:
    """numpy inverse of the blob layout in shaders/_quant.wgsl, back to f32 (M, K)."""
    nb = K // 32
    G = {QT.F32: 8, QT.F16: 4, QT.Q4_0: 1, QT.Q4_1: 1, QT.Q8_0: 2}[qtype]
    n = nb * G * M * 4
    words = blob[:n].reshape(nb, G, M, 4).transpose(2, 0, 1, 3).reshape(M, nb, G * 4)  # (M, nb, Wd)
    if qtype == QT.F32:
        return np.ascontiguousarray(words).view(np.float32).reshape(M, K)
    if qtype == QT.F16:
        return np.ascontiguousarray(words).view(np.float16).astype(np.float32).reshape(M, K)
    dm = blob[n : n + nb * M * 2].view(np.float32).reshape(nb, M, 2).transpose(1, 0, 2)  # (M, nb, 2)
    d, m = dm[..., :1], dm[..., 1:]  # (M, nb, 1) each
    b = np.ascontiguousarray(words).view(np.uint8)  # (M, nb, bytes)
    if qtype == QT.Q8_0:
        return (b.view(np.int8).astype(np.float32) * d + m).reshape(M, K)
    q = np.concatenate([b & 15, b >> 4], axis=-1).astype(np.float32)  # (M, nb, 32)
    return (q * d + m).reshape(M, K)


@pytest.mark.parametrize("qtype", [QT.F32, QT.F16, QT.Q4_0, QT.Q4_1, QT.Q8_0], ids=lambda q: q.name)
@pytest.mark.parametrize("M,K", [(1, 32), (3, 64), (17, 96)])
def test_repack_layout(qtype, M, K):
    w = np.random.default_rng(M + K).standard_normal((M, K)).astype(np.float32)
    raw = {QT.F32: lambda: w.view(np.uint8), QT.F16: lambda: w.astype(np.float16).view(np.uint8)}.get(
        qtype, lambda: quants.quantize(w, qtype)
    )()
    want = quants.dequantize(raw, qtype).reshape(M, K)
    got = _unpack(repack(raw.reshape(M, -1), qtype, K), qtype, M, K)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # Q4_0: q*d - 8d vs d*(q-8)


@pytest.mark.parametrize("neox", [False, True])
def test_qkv_pair_order_is_a_permutation(neox):
    order = qkv_pair_order(9, 3, 64, neox)
    assert sorted(order.tolist()) == list(range(9 * 64 + 2 * 3 * 64))
    half = len(order) // 2
    if not neox:
        assert (order[half:] - order[:half] == 1).all()


def test_every_kernel_has_a_binding_table():
    for name in shaders.list_shaders():
        text = shaders.read_text(name)
        n = len(re.findall(r"@binding\((\d+)\)", shaders.load(name).code))  # with its helpers
        assert n == len(SHADER_BINDINGS[name]), name
        header = text.split("//!include")[0]
        for i in range(n):
            assert re.search(rf"^// {i}\s", header, re.M), f"{name}: binding {i} missing from the header table"


def test_include_rule(shader_dir):
    shader_dir({
        "k.wgsl": "// a kernel\n//!include _lib.wgsl\nfn main() {}\n",
        "_lib.wgsl": "fn helper() {}\nfn other() {}\n",
        "bad.wgsl": "//!include _missing.wgsl\n",
        "twice.wgsl": "//!include _lib.wgsl\n//!include _lib.wgsl\n",
    })
    src = shaders.load("k.wgsl")
    assert src.code.splitlines() == ["// a kernel", "fn helper() {}", "fn other() {}", "fn main() {}"]
    assert src.locate(3) == ("_lib.wgsl", 2)
    assert src.locate(4) == ("k.wgsl", 3)
    with pytest.raises(shaders.ShaderError, match="_missing.wgsl not found"):
        shaders.load("bad.wgsl")
    with pytest.raises(shaders.ShaderError, match="twice"):
        shaders.load("twice.wgsl")


# ----------------------------------------------------------------------------- optional features

LAVAPIPE_FEATURES = ["shader-f16", "subgroup", "timestamp-query"]  # wgpu-py names, as offered


def _composed(plan: Plan) -> list[str]:
    """Composed code of every pipeline, comments removed."""
    out = []
    for p in plan.pipelines:
        code = shaders.load(p.shader, p.includes, p.enable).code
        out.append("\n".join(line.split("//")[0] for line in code.splitlines()))
    return out


@pytest.mark.parametrize("offered,allow,why", [
    (LAVAPIPE_FEATURES, "none", "not allowed"),
    ([], "auto", "adapter lacks"),
])
def test_without_features_the_plan_is_f32_only(offered, allow, why, caplog):
    from companion.model import load_model

    with caplog.at_level("INFO", logger="companion.gpu.builder"):
        plan = build_plan(load_model(None), n_ctx=64, max_batch=8, features=offered, allow=allow).plan
    assert plan.features == []
    assert all(p.includes == {} and p.enable == [] for p in plan.pipelines)
    for code in _composed(plan):
        assert "f16" not in code and "subgroup" not in code and "enable" not in code
    for short, feat in (("f16", "shader-f16"), ("subgroups", "subgroups")):
        reason = next(r.getMessage() for r in caplog.records if r.getMessage().startswith(f"plan: {short} kernels off"))
        assert why in reason and feat in reason and "f32 path" in reason
    assert any(why in n for n in plan.notes)


def test_features_follow_adapter_and_allow_list(monkeypatch):
    from companion.gpu.adapters import choose_features, parse_allowed

    assert choose_features(LAVAPIPE_FEATURES, "auto")[0] == ["shader-f16", "subgroups"]
    # headless Chromium's SwiftShader: subgroups, no shader-f16
    used, why = choose_features(["subgroups", "timestamp-query"], "auto")
    assert used == ["subgroups"] and "lacks shader-f16" in why[0]
    assert choose_features(LAVAPIPE_FEATURES, "f16")[0] == ["shader-f16"]
    assert choose_features(LAVAPIPE_FEATURES, ["subgroups"])[0] == ["subgroups"]
    monkeypatch.setenv("COMPANION_GPU_FEATURES", "subgroups")
    used, why = choose_features(LAVAPIPE_FEATURES)
    assert used == ["subgroups"] and "COMPANION_GPU_FEATURES=subgroups" in why[0]
    assert parse_allowed("F16, subgroups") == {"shader-f16", "subgroups"}
    assert parse_allowed("auto") is None and parse_allowed("none") == set()
    with pytest.raises(ValueError, match="unknown GPU feature"):
        parse_allowed("f64")


def test_feature_variants_in_the_plan():
    """Each variant is a helper swap plus the WGSL enable directives Chromium needs; the f16 KV
    cache is half the bytes; the composed code keeps the file's line numbers."""
    from companion.model import load_model

    model = load_model(None)
    f32 = build_plan(model, n_ctx=64, max_batch=8, features=[], allow="auto").plan
    both = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, allow="f16,subgroups").plan
    assert both.features == ["shader-f16", "subgroups"]
    assert both.dispatch_count("decode") == f32.dispatch_count("decode")
    assert both.buffer("blk.0.k_cache").size * 2 == f32.buffer("blk.0.k_cache").size
    by = {p.shader: p for p in both.pipelines}
    assert by["attention.wgsl"].includes == {"_prec.wgsl": "_prec_f16.wgsl", "_reduce.wgsl": "_reduce_sg.wgsl"}
    assert by["attention.wgsl"].enable == ["f16", "subgroups"]
    assert by["sample.wgsl"].enable == ["subgroups"] and by["embed.wgsl"].enable == ["f16"]
    assert by["matmul.wgsl"].enable == ["f16", "subgroups"]  # the split-K reduction
    src = shaders.load("attention.wgsl", by["attention.wgsl"].includes, by["attention.wgsl"].enable)
    assert src.code.startswith("enable f16; enable subgroups; //")
    assert len(src.code.splitlines()) == len(src.line_map)  # the enable line added no line
    assert "subgroupMax" in src.code and "_reduce_sg.wgsl" in {f for f, _ in src.line_map}
    again = Plan.from_json(both.to_json())
    assert again == both
    # a plan without the new fields (written before them) still reads, as the f32 path
    data = f32.model_dump()
    for p in data["pipelines"]:
        del p["includes"], p["enable"]
    assert Plan.model_validate(data) == f32


# ----------------------------------------------------------------------------- matmul layout

LAVAPIPE_INFO = {"device": "llvmpipe (LLVM 15.0.6, 256 bits)", "adapter_type": "CPU", "backend_type": "Vulkan"}
H100_INFO = {"device": "NVIDIA H100 80GB HBM3", "adapter_type": "DiscreteGPU", "backend_type": "Vulkan"}
SWIFTSHADER_INFO = {"device": "", "description": "SwiftShader Device (Subzero)", "adapter_type": "CPU"}


def test_layout_follows_adapter(monkeypatch, caplog):
    from companion.errors import CompanionError
    from companion.gpu.adapters import choose_layout

    monkeypatch.delenv("COMPANION_GPU_LAYOUT", raising=False)
    assert choose_layout(LAVAPIPE_INFO)[0] == "rows"
    assert choose_layout(SWIFTSHADER_INFO)[0] == "rows"
    assert choose_layout(H100_INFO)[0] == "splitk"
    assert choose_layout(None)[0] == "rows"  # unknown adapter: the layout every adapter runs well enough
    assert choose_layout(H100_INFO, "rows")[0] == "rows"
    assert choose_layout(LAVAPIPE_INFO, "splitk")[0] == "splitk"
    monkeypatch.setenv("COMPANION_GPU_LAYOUT", "rows")
    layout, why = choose_layout(H100_INFO)
    assert layout == "rows" and "COMPANION_GPU_LAYOUT=rows" in why
    monkeypatch.setenv("COMPANION_GPU_LAYOUT", "diagonal")
    with pytest.raises(CompanionError, match="COMPANION_GPU_LAYOUT='diagonal' is not valid"):
        choose_layout(H100_INFO)  # the setting is checked where it is read (companion.settings)
    with pytest.raises(ValueError, match="unknown matmul layout"):
        choose_layout(H100_INFO, "diagonal")


@pytest.mark.parametrize("info,want", [(LAVAPIPE_INFO, "rows"), (H100_INFO, "splitk")])
def test_plan_layout_per_adapter(monkeypatch, caplog, info, want):
    from companion.model import load_model

    monkeypatch.delenv("COMPANION_GPU_LAYOUT", raising=False)
    with caplog.at_level("INFO", logger="companion.gpu.builder"):
        built = build_plan(load_model(None), n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=info)
    plan = built.plan
    assert plan.model["layout"] == want
    assert any(r.getMessage().startswith(f"plan: matmul layout {want}") for r in caplog.records)
    # split-K: matvecs for one token, tiled kernels for batches (gpu/_tiled.py), the output
    # projection that merges flash-decoding partials (gpu/_flash.py); all on row-major blobs
    mm = [p for p in plan.pipelines if p.shader.startswith("matmul") and not p.shader.endswith("_tiled.wgsl") and p.shader != "matmul_attn.wgsl"]
    assert mm and all(bool(p.constants.get("SPLITK")) == (want == "splitk") for p in mm)
    special = [p for p in plan.pipelines if p.shader.endswith("_tiled.wgsl") or p.shader == "matmul_attn.wgsl"]
    assert {p.shader for p in special} == ({"matmul_tiled.wgsl", "matmul_swiglu_tiled.wgsl", "matmul_qkv_tiled.wgsl", "matmul_attn.wgsl"}
                                           if want == "splitk" else set())  # fmt: skip
    assert all(p.constants.get("ROWMAJOR") for p in special)
    assert all(bool(p.constants.get("ROWMAJOR")) == (want == "splitk") for p in plan.pipelines if p.shader == "embed.wgsl")
    n_layer = int(plan.model["n_layer"])
    assert plan.dispatch_count("decode") == 1 + 5 * n_layer + 1
    att = {p.shader for p in plan.pipelines if p.shader.startswith("attention")}
    assert att == ({"attention_split.wgsl", "attention_flash.wgsl"} if want == "splitk" else {"attention.wgsl"})
    if want == "splitk":  # decode uses the flash pair, batches the split attention
        decode = {d.pipeline.split("|")[0] for d in plan.programs["decode"].dispatches}
        assert {"attention_flash", "matmul_attn"} <= decode and "attention_split" not in decode
    # the decode step's head leaves one best (logit, id) per workgroup past the logits' row 0
    # for sample_decode (split-K only); prefill's head and "sample" read every logit
    pipes = {p.name: p for p in plan.pipelines}
    V = int(plan.model["n_vocab"])
    head = plan.programs["decode"].dispatches[-1]
    nc = pipes[plan.programs["sample_decode"].dispatches[0].pipeline].constants.get("NC", 0)
    assert pipes[plan.programs["sample"].dispatches[0].pipeline].constants.get("NC", 0) == 0
    assert pipes[plan.programs["prefill"].dispatches[-1].pipeline].constants.get("CAND", 0) == 0
    chain = pipes[plan.programs["sample_chain"].dispatches[0].pipeline].constants
    assert chain["CHAIN"] and chain.get("NC", 0) == nc  # a decode chain's sampler: ids and history in "chain"
    assert plan.programs["sample_chain"].dispatches[0].bindings[3].buffer == plan.io["chain"] == "chain"
    if want == "splitk":
        assert pipes[head.pipeline].constants["CAND"] == V and nc == head.workgroups[0] and 2 * nc <= 7 * V
        assert pipes[plan.programs["sample_decode"].dispatches[0].pipeline].constants["CAND"] == V
    else:
        assert "CAND" not in pipes[head.pipeline].constants and nc == 0
    assert not any(p.constants.get("CAND") for p in plan.pipelines if p.shader == "matmul_norm.wgsl" and not p.constants.get("SPLITK"))  # none unused


def test_auto_features_use_the_f32_kernels(monkeypatch):
    """auto leaves the kernel variants off on both layouts where the device's subgroup layout
    was not probed (measured slower on an H100 and on lavapipe, and less exact); an explicit
    allow list or the environment turns them on."""
    from companion.gpu.adapters import AUTO_F32_NOTE
    from companion.model import load_model

    monkeypatch.delenv("COMPANION_GPU_LAYOUT", raising=False)
    monkeypatch.delenv("COMPANION_GPU_FEATURES", raising=False)
    model = load_model(None)
    gpu = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=H100_INFO).plan
    assert gpu.features == [] and AUTO_F32_NOTE in gpu.notes
    gpu = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, allow="auto", adapter_info=H100_INFO).plan
    assert gpu.features == []
    forced = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, allow="f16,subgroups", adapter_info=H100_INFO).plan
    assert forced.features == ["shader-f16", "subgroups"]
    monkeypatch.setenv("COMPANION_GPU_FEATURES", "subgroups")
    assert build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=H100_INFO).plan.features == ["subgroups"]
    monkeypatch.delenv("COMPANION_GPU_FEATURES")
    cpu = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=LAVAPIPE_INFO).plan
    assert cpu.features == [] and AUTO_F32_NOTE in cpu.notes
    cpu = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, allow="f16,subgroups", adapter_info=LAVAPIPE_INFO).plan
    assert cpu.features == ["shader-f16", "subgroups"] and AUTO_F32_NOTE not in cpu.notes


def test_auto_features_use_probed_subgroups_on_gpus(monkeypatch):
    """Where the device probe found linear subgroups (NativeEngine: adapters.probe_subgroups),
    auto uses the subgroup kernels on a GPU, with the size as every reduction kernel's SG; not
    on a CPU rasterizer, not in the rows layout, and never f16. Explicit subgroups without a
    probe take the path that assumes no layout (no SG)."""
    from companion.gpu.adapters import AUTO_F32_NOTE, auto_subgroups_note
    from companion.model import load_model

    monkeypatch.delenv("COMPANION_GPU_LAYOUT", raising=False)
    monkeypatch.delenv("COMPANION_GPU_FEATURES", raising=False)
    model = load_model(None)
    gpu = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=H100_INFO, subgroup_size=32).plan
    assert gpu.features == ["subgroups"] and auto_subgroups_note(32) in gpu.notes and AUTO_F32_NOTE not in gpu.notes
    swapped = [p for p in gpu.pipelines if p.includes.get("_reduce.wgsl") == "_reduce_sg.wgsl"]
    assert swapped and all(p.constants["SG"] == 32 for p in swapped)
    assert all("SG" not in p.constants for p in gpu.pipelines if p not in swapped)
    assert {"matmul_norm.wgsl", "matmul_swiglu.wgsl", "sample.wgsl"} <= {p.shader for p in swapped}
    for info, layout in ((LAVAPIPE_INFO, None), (H100_INFO, "rows")):
        plan = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=info, layout=layout, subgroup_size=8).plan
        assert plan.features == [] and AUTO_F32_NOTE in plan.notes
    monkeypatch.setenv("COMPANION_GPU_FEATURES", "none")
    assert build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, adapter_info=H100_INFO, subgroup_size=32).plan.features == []
    unprobed = build_plan(model, n_ctx=64, max_batch=8, features=LAVAPIPE_FEATURES, allow="subgroups", adapter_info=H100_INFO).plan
    assert unprobed.features == ["subgroups"] and not any("SG" in p.constants for p in unprobed.pipelines)
    assert any("not probed" in n for n in unprobed.notes)


def test_splitk_plan_fits_swiftshader_limits():
    """One workgroup per row pair: grids within 65535 per dimension, workgroups <= 256."""
    from companion.model import load_model

    plan = build_plan(load_model(None), n_ctx=64, max_batch=32, features=[], layout="splitk").plan
    pipes = {p.name: p for p in plan.pipelines}
    for prog in plan.programs.values():
        vars = dict(prog.max_vars)
        for d in prog.dispatches:
            assert all(0 < c <= SWIFTSHADER["max-compute-workgroups-per-dimension"] for c in d.counts(vars)), d.label
            p = pipes[d.pipeline]
            assert sum(e.type != "uniform" for e in p.bindings) <= SWIFTSHADER["max-storage-buffers-per-shader-stage"]
            wg = int(p.constants.get("WG", 64))
            assert wg <= 256 and wg & (wg - 1) == 0
            if p.constants.get("SPLITK"):
                assert p.constants["ROWMAJOR"] and p.constants["TT"] == 1


def test_splitk_rows_beyond_one_grid_dimension_fall_back():
    """A matrix with more row pairs than 65535 keeps the rows kernels (on the row-major blob)."""
    from companion.gpu.builder import PlanWriter, matmul_dispatch

    w = PlanWriter()
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 200_000, 576, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5)
    p = w.pipelines[d.pipeline]
    assert p.constants["ROWMAJOR"] and not p.constants.get("SPLITK")
    assert d.workgroups[0] <= 65535
    # a decode step's head: PAIRS row pairs at once per workgroup (64 lanes each for Q8_0, K 576)
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5)
    c = w.pipelines[d.pipeline].constants
    assert c["SPLITK"] and c["PAIRS"] == 4 and c["WG"] == 256 and d.workgroups == (24576 // 4, 1, 1)
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5, RP=4)
    assert w.pipelines[d.pipeline].constants["RP"] == 4 and d.workgroups == (24576 // 16, 1, 1)
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], None, "head", "splitk", EPS=1e-5, RP=4)
    assert "PAIRS" not in w.pipelines[d.pipeline].constants and d.workgroups[0] == 6144  # batches: one pair at a time
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], 1, "head", "rows", EPS=1e-5, RP=4)
    assert "RP" not in w.pipelines[d.pipeline].constants


def test_decode_head_streams_with_few_lanes_per_row_pair():
    """The split-K decode head: about HEAD_UNITS quant vec4s per invocation, HEAD_WG invocations
    a workgroup (down to 64 for a small head to spread over 8 workgroups); batches keep one pair per workgroup; a vocabulary past
    65535 row pairs stays split-K, since its workgroups hold many pairs."""
    from companion.gpu.builder import HEAD_UNITS, HEAD_WG, PlanWriter, head_lanes, matmul_dispatch

    assert HEAD_UNITS == 8 and HEAD_WG == 256
    assert head_lanes(int(QT.Q8_0), 576) == 4  # 36 units a row: 9 each
    assert head_lanes(int(QT.Q8_0), 2048) == 16 and head_lanes(int(QT.Q6_K), 2048) == 8 and head_lanes(int(QT.F16), 576) == 8
    assert head_lanes(int(QT.Q4_0), 64) == 1  # 2 units a row
    w = PlanWriter()
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5, LANES=4)
    c = w.pipelines[d.pipeline].constants
    assert c["SPLITK"] and c["WG"] == 256 and c["PAIRS"] == 64 and "RP" not in c and d.workgroups == (24576 // 64, 1, 1)
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 151936, 896, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5, LANES=4)
    c = w.pipelines[d.pipeline].constants
    assert c["SPLITK"] and c["PAIRS"] == 64 and d.workgroups == (-(-75968 // 64), 1, 1)
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 256, 64, ["x", "g", "y"], 1, "head", "splitk", EPS=1e-5, LANES=1)
    c = w.pipelines[d.pipeline].constants
    assert c["PAIRS"] == 64 and c["WG"] == 64 and d.workgroups == (2, 1, 1)  # 128 pairs: workgroups of 64 at least
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], None, "head", "splitk", EPS=1e-5, LANES=4)
    c = w.pipelines[d.pipeline].constants
    assert "PAIRS" not in c and c["WG"] == 64 and d.workgroups[0] == 24576  # a batch's head: one pair each
    d = matmul_dispatch(w, "matmul_norm.wgsl", "wq", int(QT.Q8_0), 49152, 576, ["x", "g", "y"], 1, "head", "rows", EPS=1e-5, LANES=4)
    assert "LANES" not in w.pipelines[d.pipeline].constants and "PAIRS" not in w.pipelines[d.pipeline].constants


@pytest.mark.parametrize("qtype", [QT.F32, QT.F16, QT.Q4_0, QT.Q4_1, QT.Q8_0], ids=lambda q: q.name)
def test_repack_rowmajor_is_a_permutation_of_interleaved(qtype):
    M, K = 5, 96
    w = np.random.default_rng(1).standard_normal((M, K)).astype(np.float32)
    raw = {QT.F32: lambda: w.view(np.uint8), QT.F16: lambda: w.astype(np.float16).view(np.uint8)}.get(
        qtype, lambda: quants.quantize(w, qtype)
    )()
    a = repack(raw.reshape(M, -1), qtype, K)
    b = repack(raw.reshape(M, -1), qtype, K, rowmajor=True)
    assert a.size == b.size and sorted(a.tolist()) == sorted(b.tolist())
    G = {QT.F32: 8, QT.F16: 4, QT.Q4_0: 1, QT.Q4_1: 1, QT.Q8_0: 2}[qtype]
    n = K // 32 * G * M * 4
    assert (b[:n].reshape(M, -1) == a[:n].reshape(K // 32 * G, M, 4).transpose(1, 0, 2).reshape(M, -1)).all()
