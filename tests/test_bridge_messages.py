"""Bridge message models: the discriminated unions, decoding errors, and schema drift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from companion.bridge import messages as m
from companion.bridge.schema import bridge_schema, schema_path, schema_text


def test_checked_in_schema_matches_the_models():
    # Fails when messages.py changed without `python -m companion.bridge.schema`.
    assert schema_path().read_text(encoding="utf-8") == schema_text()


def test_schema_lists_every_message_with_its_senders():
    schema = bridge_schema()
    assert schema["protocol_version"] == m.PROTOCOL_VERSION
    assert set(schema["messages"]) == m.PAGE_TYPES | m.CORE_TYPES
    for kind, entry in schema["messages"].items():
        assert ("page" in entry["from"]) == (kind in m.PAGE_TYPES)
        assert ("core" in entry["from"]) == (kind in m.CORE_TYPES)
        assert entry["schema"]["properties"]["type"]["const"] == kind
        assert entry["schema"]["additionalProperties"] is False


@pytest.mark.parametrize("model", sorted(set(m.PAGE_MESSAGES + m.CORE_MESSAGES), key=m.type_of))
def test_every_message_round_trips_through_its_union(model):
    required = {
        "protocol_version": 1, "text": "hi", "turn": 1, "error": "boom", "engine": "native",
        "request_id": 7, "ids": [1, 2], "id": 3, "reason": "lost", "values": {}, "seq": 1,
        "code": "invalid", "message": "bad", "app_version": "0.1", "adapter": "cpu",
        "typing": True, "start_ms": 0, "width": 64, "height": 48, "pose": {"time": 1.5},
        "action": "remembered", "undo_id": 2, "name": "smollm2-135m",
    }  # fmt: skip
    fields = {
        k: v
        for k, v in required.items()
        if k in model.model_fields and model.model_fields[k].is_required()
    }
    if model is m.Logits:
        msg = m.Logits.from_array(7, np.arange(4, dtype=np.float32))
    else:
        msg = model(**fields)
    for sender, types in (("page", m.PAGE_TYPES), ("core", m.CORE_TYPES)):
        if msg.type in types:
            assert m.decode(m.encode(msg), sender) == msg


def test_logits_base64_round_trip_is_exact():
    values = np.random.default_rng(0).standard_normal(49152).astype(np.float32)  # (V,) f32
    msg = m.decode(m.encode(m.Logits.from_array(1, values)), "page")
    np.testing.assert_array_equal(msg.array(), values)
    assert len(m.encode(msg)) < m.MAX_MESSAGE_BYTES  # a full vocabulary fits one message


def test_logits_with_the_wrong_length_are_invalid():
    bad = {"type": "logits", "request_id": 1, "n_vocab": 10, "values": "AAAAAA=="}
    with pytest.raises(m.MessageRejected) as exc:
        m.decode(json.dumps(bad), "page")
    assert exc.value.code == "invalid"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "malformed"),
        ("[1, 2]", "malformed"),
        ('{"no_type": 1}', "malformed"),
        ('{"type": 5}', "malformed"),
        ('{"type": "launch_missiles"}', "unknown_type"),
        ('{"type": "welcome", "app_version": "1", "engine": "x", "adapter": "y"}', "not_allowed"),
        ('{"type": "generate", "request_id": 1, "ids": [1]}', "not_allowed"),
        ('{"type": "user_message"}', "invalid"),
        ('{"type": "user_message", "text": ""}', "invalid"),
        ('{"type": "user_message", "text": "hi", "extra": 1}', "invalid"),
        ('{"type": "token", "request_id": 1, "id": -1}', "invalid"),
        ('{"type": "engine_status", "engine": "browser", "progress": 2}', "invalid"),
    ],
)
def test_decode_names_what_is_wrong(raw, code):
    with pytest.raises(m.MessageRejected) as exc:
        m.decode(raw, "page")
    assert exc.value.code == code
    assert exc.value.to_error().code == code


def test_oversized_messages_are_refused_before_parsing():
    raw = json.dumps({"type": "user_message", "text": "x" * (m.MAX_MESSAGE_BYTES + 1)})
    with pytest.raises(m.MessageRejected) as exc:
        m.decode(raw, "page")
    assert exc.value.code == "too_large"


def test_core_messages_decode_for_the_page_direction():
    gen = m.Generate(request_id=3, ids=[1, 2, 3], want="logits", step=4, history=[1])
    assert m.decode(m.encode(gen), "core") == gen
    with pytest.raises(m.MessageRejected):
        m.decode(m.encode(m.UserMessage(text="hi")), "core")
