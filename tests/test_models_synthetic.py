"""Random GGUFs with real shapes (companion.model.synthetic, scripts/make_random_gguf.py): the
Llama 3.2 1B shape and llama.cpp's Q4_K_M mix, random K-quant blocks with the asked spread,
and a CI-sized copy of that model (same widths per head, Q4_K / Q6_K mix, Llama 3 frequency
factors) whose tied Q6_K embedding is split under a small binding limit, standing in for the
real 128,256 x 2048 table over 128 MiB: the split plan decodes natively and in the page like
the numpy reference. The real 1B file is checked by hand (README: tested models)."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from companion.headless import F32_TOLERANCE
from companion.model.synthetic import (
    SHAPES,
    q4_k_m_types,
    random_q4_k,
    random_q6_k,
    scaled,
    tensor_shapes,
    use_more_bits,
)

# Llama 3.2 1B's widths per head and its mix, at a size CI runs in seconds: 2 blocks, a
# 3,000-row vocabulary, d=256 (one K-quant super-block per row of the attention matrices)
SMALL = scaled(SHAPES["llama-3.2-1b"], n_vocab=3000, n_embd=256, n_layer=2, n_head=4, n_head_kv=1, n_ff=512,
               context_length=256, rope_scaling=(32.0, 1.0, 4.0, 64), name="llama-3.2-1b-small")  # fmt: skip
SMALL_BINDING = 300_000  # bytes: the 3,000-row Q6_K embedding (768,000 bytes repacked) takes 3 chunks


def test_llama_3_2_1b_shape_and_q4_k_m_mix():
    s = SHAPES["llama-3.2-1b"]
    shapes = tensor_shapes(s)
    n = sum(int(np.prod(v)) for v in shapes.values())
    assert abs(n - 1_235_814_432) < 1_000  # Llama 3.2 1B's parameter count (tied embedding, rope_freqs)
    assert shapes["token_embd.weight"] == (128256, 2048) and "output.weight" not in shapes
    assert shapes["blk.0.attn_k.weight"] == (512, 2048) and shapes["blk.15.ffn_down.weight"] == (2048, 8192)
    assert shapes["rope_freqs.weight"] == (32,)
    types = q4_k_m_types(s)
    assert types["token_embd.weight"] == QT.Q6_K  # tied: the embedding is the head, as llama.cpp keeps it
    more = [i for i in range(16) if use_more_bits(i, 16)]
    assert more == [0, 1, 4, 7, 10, 13, 14, 15]
    assert all(types[f"blk.{i}.ffn_down.weight"] == (QT.Q6_K if i in more else QT.Q4_K) for i in range(16))
    counts = {t: list(types.values()).count(t) for t in set(types.values())}
    assert counts == {QT.Q4_K: 96, QT.Q6_K: 17}
    untied = q4_k_m_types(scaled(s, tied=False))
    assert untied["output.weight"] == QT.Q6_K and untied["token_embd.weight"] == QT.Q4_K


@pytest.mark.parametrize("make,qtype", [(random_q4_k, QT.Q4_K), (random_q6_k, QT.Q6_K)])
def test_random_blocks_dequantize_to_the_asked_spread(make, qtype):
    import gguf

    rng = np.random.default_rng(1)
    for K in (256, 2048):
        raw = make(rng, 64, K, 1 / np.sqrt(K))  # (64, bytes per row)
        x = gguf.quants.dequantize(raw, qtype) * np.sqrt(K)  # (64, K), unit spread asked
        assert x.shape == (64, K) and np.isfinite(x).all()
        assert 0.9 < x.std() < 1.15 and abs(x.mean()) < 0.05


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    from companion.model import load_model
    from companion.model.synthetic import write_random_gguf

    m = load_model(write_random_gguf(tmp_path_factory.mktemp("syn") / "small.gguf", SMALL, seed=3))
    assert {t.ggml_type for t in m.tensors.values()} == {QT.F32, QT.Q4_K, QT.Q6_K}
    assert m.config.rope_freqs and m.config.tied_output and m.config.n_vocab == 3000
    return m


def _split_plan_checks(plan) -> None:
    chunks = [b for b in plan.buffers if b.name.startswith("token_embd.")]
    assert len(chunks) == 3 and all(b.size <= SMALL_BINDING for b in chunks)
    heads = [d for d in plan.programs["decode"].dispatches if d.label.startswith("output_norm+output")]
    assert len(heads) == 3  # the tied head reads the same chunks


@pytest.mark.gpu
@pytest.mark.parametrize("layout", ["rows", "splitk"])  # CPU rasterizers' layout, GPUs' layout
def test_split_q4_k_m_model_decodes_natively(small_model, gpu_adapter_info, monkeypatch, layout):
    """f32 kernels on the split plan against the reference: a prompt, then three decode steps."""
    from companion.engines.native import NativeEngine
    from companion.engines.reference import ReferenceEngine
    from companion.gpu import builder

    monkeypatch.setattr(builder, "MAX_BINDING", SMALL_BINDING)
    eng = NativeEngine(small_model, n_ctx=64, max_batch=8, features="none", layout=layout, progress=False)
    try:
        _split_plan_checks(eng.plan)
        ref = ReferenceEngine(small_model, 64)
        prompt = [5, 2999, 1500, 17, 2048, 998]
        got = [eng.eval(prompt)] + [eng.eval([t]) for t in (2500, 3, 1024)]  # (V,) each
        want = [ref.eval(prompt)] + [ref.eval([t]) for t in (2500, 3, 1024)]
        assert float(np.std(want[0])) > 0.5  # logits spread enough for the bound to mean something
        for a, b in zip(got, want, strict=True):
            assert np.isfinite(a).all() and float(np.abs(a - b).max()) <= F32_TOLERANCE
            assert int(a.argmax()) == int(b.argmax())
    finally:
        eng.close()


@pytest.mark.browser
def test_split_q4_k_m_model_decodes_in_the_page(small_model, chromium_required, chromium, monkeypatch):
    from conftest_browser import close_page_engine, open_page_engine

    from companion.engines.browser import PlanAssets
    from companion.engines.reference import ReferenceEngine
    from companion.gpu import builder

    monkeypatch.setattr(builder, "MAX_BINDING", SMALL_BINDING)
    assets = PlanAssets(small_model, 64)
    pe = open_page_engine(chromium, assets, small_model)
    try:
        _split_plan_checks(assets._built.plan)  # the plan the page loaded
        ref = ReferenceEngine(small_model, 64)
        prompt = [5, 2999, 1500, 17]
        got = [pe.engine.eval(prompt)] + [pe.engine.eval([t]) for t in (2500, 3)]
        want = [ref.eval(prompt)] + [ref.eval([t]) for t in (2500, 3)]
        for a, b in zip(got, want, strict=True):
            assert float(np.abs(a - b).max()) <= F32_TOLERANCE and int(a.argmax()) == int(b.argmax())
        assert pe.errors == []
    finally:
        close_page_engine(pe)


@pytest.mark.gpu
def test_bench_takes_model_and_reports_the_split(small_model, gpu_adapter_info, monkeypatch, companion_home):
    """`companion bench --model PATH` (the subcommand's option) measures that file, and its JSON
    says how the plan laid the model out: the embedding in row chunks."""
    import json

    from click.testing import CliRunner

    from companion.cli import main
    from companion.gpu import builder

    monkeypatch.setattr(builder, "MAX_BINDING", SMALL_BINDING)
    args = ["bench", "--model", str(small_model.path), "--engine", "native", "--json", "--prompt-tokens", "4",
            "--decode-tokens", "2", "--repeats", "1", "--contexts", "", "--prefill-sizes", "", "--no-chat"]  # fmt: skip
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    r = json.loads(res.output.strip().splitlines()[-1])
    assert r["model"] == "llama-3.2-1b-small" and r["decode_tok_per_s"] > 0
    assert any("token_embd: 3 row chunks" in n for n in r["plan_notes"])


@pytest.mark.parametrize("embd", [QT.BF16, QT.Q5_1])
def test_big_tables_without_a_kernel_split_too(tmp_path, monkeypatch, embd):
    """A table in a type the kernels do not read (dequantized to F16 at load) is split like the
    others: each chunk holds only its rows (it used to hold the whole table and be refused)."""
    from companion.gpu import builder
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    monkeypatch.setattr(builder, "MAX_BINDING", 40_000)
    m = load_model(write_tiny_gguf(tmp_path / "t.gguf", qtype=QT.Q8_0, embd_qtype=embd, n_vocab=2000))
    built = builder.build_plan(m, n_ctx=32, max_batch=4)
    chunks = [b for b in built.plan.buffers if b.name.startswith("token_embd.")]
    assert len(chunks) == 8 and all(b.size <= 40_000 for b in chunks)
    table = m.dequantize("token_embd.weight").astype(np.float16).reshape(2000, 64).view(np.uint8)  # (V, 128 bytes)
    r0 = 0
    for b in chunks:  # chunk i is the F16 table's rows r0.. repacked, as the rows kernels read them
        blob = built.blobs[b.name]
        n = blob.nbytes // 128
        np.testing.assert_array_equal(blob, builder.repack(table[r0 : r0 + n], QT.F16, 64))
        r0 += n
    assert r0 == 2000

