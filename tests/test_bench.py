"""`companion bench`: ratios against a peer (ours, llama-bench's JSON), and the figures of a tiny model
on the native engine (decode by context, prefill by size, the chat loop, counters)."""

import pytest

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


def test_with_peer_adds_ratios_per_context_and_size():
    ours = {"prefill_tok_per_s": 10.0, "decode_tok_per_s": 10.0,
            "decode": {"0": {"tok_per_s": 500.0}, "2048": {"tok_per_s": 400.0}}, "prefill": {"512": {"tok_per_s": 30000.0}}}
    peer = {"prefill_tok_per_s": 20.0, "decode_tok_per_s": 5.0, "decode": {"0": 1000.0, "2048": 800.0}, "prefill": {"512": 60000.0}}
    out = with_peer(ours, peer)
    assert out["ratio_decode_vs_peer_by_context"] == {"0": 0.5, "2048": 0.5}
    assert out["ratio_prefill_vs_peer_by_size"] == {"512": 0.5}


def test_llama_bench_peer_reads_its_json(tmp_path):
    """run_llama_bench maps llama-bench's rows (pp: n_gen 0; tg at depth n_depth) onto our keys."""
    import json
    import stat
    import sys

    from companion.bench_peer import run_llama_bench

    rows = [{"n_prompt": n, "n_gen": 0, "n_depth": 0, "avg_ts": 1000.0 * n, "build_commit": "abc", "backends": "CUDA", "gpu_info": "H200"}
            for n in (128, 512)]
    rows += [{"n_prompt": 0, "n_gen": 128, "n_depth": d, "avg_ts": 900.0 - d / 10} for d in (0, 128, 512, 2048)]
    fake = tmp_path / "llama-bench"
    fake.write_text(f"#!{sys.executable}\nimport json, sys\nrows = {json.dumps(rows)}\n"
                    "pp = '-n' in sys.argv and sys.argv[sys.argv.index('-n') + 1] == '0'\n"
                    "print(json.dumps([r for r in rows if (r['n_gen'] == 0) == pp]))\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    out = run_llama_bench(str(fake), "m.gguf", 128, [128, 512], [0, 512, 2048], 128, 2)
    assert out["prefill"] == {"128": 128000.0, "512": 512000.0}
    assert out["decode"] == {"0": 900.0, "512": 848.8, "2048": 695.2}
    assert out["prefill_tok_per_s"] == 128000.0 and out["decode_tok_per_s"] == 887.2
    assert "CUDA" in out["peer"]
    fake.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    assert run_llama_bench(str(fake), "m.gguf", 128, [128], [0], 8, 1) == {"error": "boom"}


@pytest.mark.gpu
def test_bench_engine_reports_contexts_prefill_and_chat(gpu_adapter_info, tmp_path):
    from companion.bench import bench_engine
    from companion.engines.native import NativeEngine
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    model = load_model(str(write_tiny_gguf(tmp_path / "tiny.gguf", n_layer=1, context_length=512)))
    eng = NativeEngine(model, n_ctx=200, progress=False)
    try:
        r = bench_engine(eng, model, 16, 8, 1, contexts=(0, 64, 400), prefill_sizes=(16, 32), chat=True)
    finally:
        eng.close()
    assert set(r["decode"]) == {"0", "64"}  # 400 does not fit the 200-position context
    assert set(r["prefill"]) == {"16", "32"} and r["prefill"]["32"]["time_to_first_token_ms"] > 0
    assert r["decode_long_vs_short"] > 0
    assert r["submits_per_token"] == 0.25 and r["encode_ms_per_token"] > 0
    assert "decode_tok_per_s" in r["chat"] or "error" in r["chat"]
    app = r["chat_app_sampling"]  # the app's default sampling, as a user's replies are drawn
    assert "decode_tok_per_s" in app or "error" in app
    assert app["sampling"]["temperature"] > 0 and app["sampling"]["top_k"] > 0
    assert r["peak_rss_mb"] > 0 and r["machine"]["date"]
