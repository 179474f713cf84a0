"""`companion bench` arithmetic that does not need an engine: ratios against a peer."""

from companion.bench import with_peer


def test_with_peer_adds_ratios_from_the_same_run():
    ours = {"engine": "native", "prefill_tok_per_s": 1000.0, "decode_tok_per_s": 300.0}
    peer = {"prefill_tok_per_s": 4000.0, "decode_tok_per_s": 150.0}
    out = with_peer(ours, peer)
    assert out["peer"] == peer
    assert out["ratio_prefill_vs_peer"] == 0.25
    assert out["ratio_decode_vs_peer"] == 2.0
    assert "peer" not in ours  # the engine's own result is left as it was


def test_with_peer_reports_a_failed_peer_without_ratios():
    out = with_peer({"prefill_tok_per_s": 1.0, "decode_tok_per_s": 1.0}, {"error": "llama_cpp not importable"})
    assert out["peer"]["error"] and "ratio_decode_vs_peer" not in out
