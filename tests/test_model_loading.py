"""GGUF loading: the default model's config, and a clear error for each kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
from gguf import GGMLQuantizationType as QT

from companion.errors import ModelError, UnsupportedModelError
from companion.model import load_model
from companion.model.default import SIZE, default_model_path, verify_default_model
from companion.testing import write_tiny_gguf


def test_default_model_config(model):
    c = model.config
    assert (c.arch, c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff, c.n_vocab) == (
        "llama", 30, 576, 9, 3, 64, 1536, 49152,
    )
    assert c.rope_base == 100000.0 and not c.rope_neox and c.tied_output
    assert model.output_name == "token_embd.weight"
    assert model.tensors["blk.0.attn_q.weight"].ggml_type == QT.Q4_1
    assert model.tensors["token_embd.weight"].ggml_type == QT.Q8_0


def test_default_model_verified_by_size_and_hash():
    p = default_model_path()
    assert p.stat().st_size == SIZE
    verify_default_model(p)  # full sha256 on first use, cached after


def test_tensor_views_are_zero_copy_and_dequantize(model):
    t = model.tensors["blk.0.attn_k.weight"]
    assert t.raw.nbytes == t.n_bytes and t.shape == (192, 576)
    assert not t.raw.flags.owndata
    w = model.dequantize("blk.0.attn_k.weight")
    assert w.shape == (192, 576) and w.dtype == np.float32 and np.isfinite(w).all()


def test_loads_any_supported_quant_type(tmp_path):
    for q in (QT.Q4_0, QT.Q4_1, QT.Q8_0, QT.F16, QT.F32):
        m = load_model(write_tiny_gguf(tmp_path / f"{q.name}.gguf", qtype=q))
        assert m.config.file_type == q.name


def test_not_a_gguf(tmp_path):
    p = tmp_path / "model.gguf"
    p.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ModelError, match="not a GGUF file"):
        load_model(p)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "nope.gguf")


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.01])
def test_truncated(tmp_path, keep):
    p = write_tiny_gguf(tmp_path / "t.gguf")
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelError, match="truncated|corrupt"):
        load_model(p)


def test_unsupported_architecture(tmp_path):
    p = write_tiny_gguf(tmp_path / "t.gguf", arch="mamba")
    with pytest.raises(UnsupportedModelError, match="architecture 'mamba' is not supported"):
        load_model(p)


def test_unsupported_tensor_type_is_named(tmp_path):
    p = write_tiny_gguf(tmp_path / "t.gguf", type_override={"blk.1.ffn_up.weight": QT.F64})
    with pytest.raises(UnsupportedModelError, match=r"blk\.1\.ffn_up\.weight uses type F64"):
        load_model(p)


def test_missing_tensor(tmp_path):
    p = write_tiny_gguf(tmp_path / "t.gguf", drop="blk.1.attn_v.weight")
    with pytest.raises(ModelError, match=r"missing tensor blk\.1\.attn_v\.weight"):
        load_model(p)


def test_inconsistent_shapes(tmp_path):
    p = write_tiny_gguf(tmp_path / "t.gguf", shape_override={"blk.0.ffn_gate.weight": (64, 64)})
    with pytest.raises(ModelError, match=r"blk\.0\.ffn_gate\.weight has shape \(64, 64\), expected \(96, 64\)"):
        load_model(p)


def test_untied_output_head(tmp_path):
    m = load_model(write_tiny_gguf(tmp_path / "t.gguf", tied=False))
    assert not m.config.tied_output and m.output_name == "output.weight"


def test_model_info_summary(model):
    s = model.summary()
    assert s["architecture"] == "llama" and s["size_bytes"] == SIZE
    assert s["tensor_types"] == {"F32": 61, "Q4_1": 210, "Q8_0": 1}
    assert "im_start" in s["chat_template"]
