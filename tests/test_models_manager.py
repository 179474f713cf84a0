"""`companion model list | add | remove | use`, --model by name, the GPU memory estimate, and
tables over one binding split into row chunks (a small MAX_BINDING stands in for 128 MiB)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from companion.cli import main
from companion.errors import ModelError, UnsupportedModelError
from companion.testing import write_tiny_arch, write_tiny_gguf


@pytest.fixture(scope="module")
def qwen2_file(tmp_path_factory):
    return write_tiny_arch(tmp_path_factory.mktemp("m") / "Tiny-Qwen2.gguf", "qwen2")


def test_add_list_use_remove(qwen2_file, companion_home):
    r = CliRunner()
    out = r.invoke(main, ["model", "add", str(qwen2_file)])
    assert out.exit_code == 0, out.output
    assert "added tiny-qwen2: qwen2 F32" in out.output
    again = r.invoke(main, ["model", "add", str(qwen2_file)])
    assert again.exit_code == 1 and "exists already" in again.output
    # the same file under another name (or through a link) is the model already known
    (qwen2_file.parent / "link.gguf").unlink(missing_ok=True)
    (qwen2_file.parent / "link.gguf").symlink_to(qwen2_file)
    twice = r.invoke(main, ["model", "add", str(qwen2_file.parent / "link.gguf"), "--name", "other"])
    assert twice.exit_code == 1 and "known already as 'tiny-qwen2'" in twice.output
    default = r.invoke(main, ["model", "add", str(_default_path())])
    assert default.exit_code == 1 and "known already as 'smollm2-135m'" in default.output
    listed = json.loads(r.invoke(main, ["model", "list", "--json"]).output)
    names = [m["name"] for m in listed["models"]]
    assert "tiny-qwen2" in names and "smollm2-135m" in names
    tiny = next(m for m in listed["models"] if m["name"] == "tiny-qwen2")
    assert tiny["arch"] == "qwen2" and not tiny["in_use"] and tiny["gpu_bytes"]["total"] > tiny["gpu_bytes"]["weights"] > 0
    assert r.invoke(main, ["model", "use", "tiny-qwen2"]).exit_code == 0
    assert json.loads((companion_home / "settings.json").read_text())["model_path"] == str(qwen2_file)
    listed = json.loads(r.invoke(main, ["model", "list", "--json"]).output)
    assert [m["name"] for m in listed["models"] if m["in_use"]] == ["tiny-qwen2"]
    info = r.invoke(main, ["--model", "tiny-qwen2", "model", "info", "--json"])  # --model takes a name too
    assert info.exit_code == 0 and json.loads(info.output)["architecture"] == "qwen2"
    assert r.invoke(main, ["model", "remove", "tiny-qwen2"]).exit_code == 0
    assert qwen2_file.exists()
    gone = r.invoke(main, ["model", "remove", "tiny-qwen2"])
    assert gone.exit_code == 1 and "no model named" in gone.output
    builtin = r.invoke(main, ["model", "remove", "smollm2-135m"])
    assert builtin.exit_code == 1 and "built in" in builtin.output


def _default_path():
    from companion.model.default import default_model_path

    return default_model_path()


def test_add_refuses_what_cannot_run(tmp_path, companion_home):
    from companion.model.registry import add_model

    with pytest.raises(ModelError, match="not a GGUF"):
        (tmp_path / "x.gguf").write_bytes(b"nope")
        add_model(tmp_path / "x.gguf")
    with pytest.raises(UnsupportedModelError, match="architecture 'mamba'"):
        add_model(write_tiny_gguf(tmp_path / "m.gguf", arch="mamba"))
    with pytest.raises(ModelError, match="not valid"):
        add_model(write_tiny_gguf(tmp_path / "ok.gguf"), name="Has Spaces")


def test_estimate_counts_weights_kv_and_splits(qwen2_file):
    from companion.gpu.builder import build_plan, estimate_gpu_bytes
    from companion.model import load_model

    m = load_model(qwen2_file)
    est = estimate_gpu_bytes(m, n_ctx=128, max_batch=16)
    plan = build_plan(m, n_ctx=128, max_batch=16).plan
    total = sum(b.size for b in plan.buffers)
    assert 0.9 * total <= est["total"] <= 1.1 * total  # the estimate is the plan's size, give or take padding


def test_big_tables_split_into_row_chunks(tmp_path, monkeypatch):
    """With a 40 KB binding limit the tied Q8_0 embedding (2000 x 64) comes in row chunks: the
    embed and head dispatches cover every row, and the plan's logits equal the reference's."""
    from gguf import GGMLQuantizationType as QT

    from companion.gpu import builder
    from companion.model import load_model

    monkeypatch.setattr(builder, "MAX_BINDING", 40_000)
    m = load_model(write_tiny_gguf(tmp_path / "t.gguf", qtype=QT.Q8_0, n_vocab=2000))
    plan = builder.build_plan(m, n_ctx=32, max_batch=4).plan
    chunks = [b for b in plan.buffers if b.name.startswith("token_embd.")]
    assert len(chunks) >= 3 and all(b.size <= 40_000 for b in chunks)
    embeds = [d for d in plan.programs["decode"].dispatches if d.label.startswith("embed")]
    heads = [d for d in plan.programs["decode"].dispatches if d.label.startswith("output_norm+output")]
    assert len(embeds) == len(heads) == len(chunks)
    rows = [plan.pipelines[[p.name for p in plan.pipelines].index(d.pipeline)].constants for d in heads]
    spans = sorted((c["YO"], c["M"]) for c in rows)
    assert spans[0][0] == 0 and all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:], strict=False)) and sum(n for _, n in spans) == 2000


@pytest.mark.gpu
def test_split_tables_run_natively(tmp_path, monkeypatch, gpu_adapter_info):
    from gguf import GGMLQuantizationType as QT

    from companion.engines.native import NativeEngine
    from companion.engines.reference import ReferenceEngine
    from companion.gpu import builder
    from companion.model import load_model

    monkeypatch.setattr(builder, "MAX_BINDING", 40_000)
    m = load_model(write_tiny_gguf(tmp_path / "t.gguf", qtype=QT.Q8_0, n_vocab=2000))
    eng = NativeEngine(m, n_ctx=32, max_batch=4, features="none", progress=False)
    try:
        ids = [3, 1999, 150, 777, 1200]
        got = eng.eval_all(ids)  # (T, V)
        want = ReferenceEngine(m, 32).eval_all(ids)  # (T, V)
        np.testing.assert_allclose(got, want, atol=1e-3)
    finally:
        eng.close()
