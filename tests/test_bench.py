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
    assert run_llama_bench(str(fake), "m.gguf", 128, [128], [0], 8, 1) == {"peer": "llama.cpp llama-bench", "error": "boom"}


def test_with_peers_lists_each_peer_with_its_ratios_and_the_absent_ones():
    """Several peers from one run: each keeps its own ratios; llama.cpp is the headline peer
    (the top-level ratio keys) even when another was measured first; a failed one is listed
    without ratios, and the ones not installed say how to get them."""
    from companion.bench import with_peers

    ours = {"engine": "reference", "prefill_tok_per_s": 100.0, "decode_tok_per_s": 60.0, "decode": {"0": {"tok_per_s": 60.0}}}
    torch_peer = {"peer": "PyTorch 2 + transformers 4 (CPU)", "prefill_tok_per_s": 200.0, "decode_tok_per_s": 12.0, "decode": {"0": 15.0}}
    llama = {"peer": "llama.cpp (llama-cpp-python 0.3)", "prefill_tok_per_s": 400.0, "decode_tok_per_s": 120.0, "decode": {"0": 100.0}}
    broken = {"peer": "llama.cpp llama-bench", "error": "no GPU"}
    out = with_peers(ours, [torch_peer, broken, llama], {"torch-gpu": "no CUDA"})
    by_name = {p["peer"]: p for p in out["peers"]}
    assert by_name[torch_peer["peer"]]["ratio_decode_vs_peer"] == 5.0
    assert by_name[torch_peer["peer"]]["ratio_decode_vs_peer_by_context"] == {"0": 4.0}
    assert by_name[llama["peer"]]["ratio_prefill_vs_peer"] == 0.25
    assert "ratio_decode_vs_peer" not in by_name["llama.cpp llama-bench"]
    assert out["peer"]["peer"] == llama["peer"] and out["ratio_decode_vs_peer"] == 0.5
    assert out["ratio_decode_vs_peer_by_context"] == {"0": 0.6}
    assert out["peers_absent"] == {"torch-gpu": "no CUDA"}
    only_failed = with_peers(ours, [broken])
    assert only_failed["peer"] == broken and "ratio_decode_vs_peer" not in only_failed


def test_a_peers_figures_come_from_its_two_primitives():
    """The peer script's shared loop: medians after a warm-up run, per prefill size and per
    decode context, from prefill(ids) and decode(ids, n) timings."""
    from companion.bench_peer import _figures

    calls: list[tuple[str, int]] = []

    def prefill(ids):
        calls.append(("prefill", len(ids)))
        return len(ids) / 1000.0 * (3.0 if len(calls) == 1 else 1.0)  # the warm-up run is slow

    def decode(ids, n):
        calls.append(("decode", len(ids)))
        return n / (200.0 - len(ids) / 100.0)

    req = {"prompt_ids": [1] * 100, "decode_tokens": 10, "repeats": 1,
           "prefill_prompts": {"512": [2] * 512}, "context_prompts": {"0": [3], "2048": [4] * 2048}}
    out = _figures(req, prefill, decode)
    assert out["prefill_tok_per_s"] == 1000.0 and out["prefill"] == {"512": 1000.0}
    assert out["decode"] == {"0": 199.99, "2048": 179.52}
    assert out["decode_tok_per_s"] == 199.0
    assert calls.count(("prefill", 100)) == 2 and calls.count(("decode", 2048)) == 2  # repeats + a warm-up


def test_has_modules_names_what_an_interpreter_lacks():
    import sys

    from companion.bench_peer import has_modules

    assert has_modules(sys.executable, ("json", "sqlite3")) is None
    missing = has_modules(sys.executable, ("json", "no_such_module_xyz"))
    assert missing is not None and "no_such_module_xyz" in missing and "json" not in missing.split(" has no ")[1]
    assert "did not run" in (has_modules("/nonexistent/python", ("json",)) or "")


def test_bench_vs_names_the_peers_not_installed(tmp_path):
    """`companion bench --vs` where no peer is installed: our figures, and for each peer why it
    was not measured and the command that installs it."""
    import json
    from importlib.util import find_spec

    from click.testing import CliRunner

    from companion.cli import main
    from companion.testing import write_tiny_gguf

    if find_spec("llama_cpp") or find_spec("torch"):
        pytest.skip("a peer is installed in this Python: --vs would measure it")
    model = write_tiny_gguf(tmp_path / "tiny.gguf")
    res = CliRunner().invoke(main, ["bench", "--engine", "reference", "--model", str(model), "--vs", "--json", "--prompt-tokens", "8",
                                    "--decode-tokens", "4", "--repeats", "1", "--contexts", "", "--prefill-sizes", "", "--no-chat"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["decode_tok_per_s"] > 0
    absent = out["peers_absent"]
    assert "llama_cpp" in absent["llama-cpp-python"] and "companion[bench]" in absent["llama-cpp-python"]
    assert "torch" in absent["torch"] and "pip install torch transformers accelerate" in absent["torch"]
    assert "llama-bench" not in absent  # a CPU engine's peer is llama.cpp on the CPU
    assert out["peers"] == [] and "ratio_decode_vs_peer" not in out


@pytest.mark.gpu
def test_bench_engine_reports_contexts_prefill_and_chat(gpu_adapter_info, tmp_path):
    from companion.bench import bench_engine
    from companion.engines.native import NativeEngine
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    model = load_model(str(write_tiny_gguf(tmp_path / "tiny.gguf", n_layer=1, context_length=512)))
    eng = NativeEngine(model, n_ctx=200, ahead=4, progress=False)  # a fixed 4 steps a submit
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


def test_plot_draws_ours_beside_each_peer(tmp_path, monkeypatch):
    """The PNG: decode by context and prefill by size, one bar per peer beside ours, each
    peer named in the legend; a failed peer is left out."""
    from PIL import Image

    from companion.bench import plot, with_peers

    ours = {"engine": "native", "adapter": "H200", "model": "m", "prefill_tok_per_s": 1.0, "decode_tok_per_s": 1.0,
            "decode": {"0": {"tok_per_s": 800.0}, "2048": {"tok_per_s": 700.0}},
            "prefill": {"128": {"tok_per_s": 16000.0}, "512": {"tok_per_s": 28000.0}}, "machine": {"date": "2026-12-01"}}
    peers = [{"peer": "llama.cpp llama-bench", "prefill_tok_per_s": 1.0, "decode_tok_per_s": 1.0, "decode": {"0": 960.0, "2048": 900.0},
              "prefill": {"128": 14000.0, "512": 45000.0}},
             {"peer": "PyTorch + transformers (GPU)", "prefill_tok_per_s": 1.0, "decode_tok_per_s": 1.0, "decode": {"0": 90.0, "2048": 80.0},
              "prefill": {"128": 9000.0, "512": 20000.0}},
             {"peer": "broken", "error": "x"}]
    result = with_peers(ours, peers)
    import matplotlib.axes

    bars: list[int] = []
    labels: list[str] = []
    real_bar = matplotlib.axes.Axes.bar

    def bar(self, xs, heights, *args, **kwargs):  # records each series, then draws it
        bars.append(len(heights))
        labels.append(kwargs.get("label", ""))
        return real_bar(self, xs, heights, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", bar)
    path = plot(result, str(tmp_path / "bench.png"))
    assert path is not None
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 600
        assert len(img.convert("RGB").getcolors(1 << 20) or []) > 20  # drawn, not blank
    assert bars == [2, 2, 2] * 2  # decode and prefill: ours, llama.cpp, PyTorch (not the broken one)
    assert labels[:3] == ["companion native", "llama.cpp llama-bench", "PyTorch + transformers (GPU)"]


class _ClockEngine:
    """An engine whose every call advances a fake clock by `step_s` (bench_engine's timer)."""

    name, adapter, n_ctx = "fake", "none", 4096

    def __init__(self, clock: list[float], step_s: float):
        self.clock, self.step_s, self.evals = clock, step_s, 0

    def reset(self) -> None:
        pass

    def eval(self, ids):
        self.evals += 1
        self.clock[0] += self.step_s

    def next_token(self, ids, sampler, history) -> int:
        self.clock[0] += self.step_s
        return 1


@pytest.mark.parametrize("step_s,warmups", [(0.5, 1), (0.02, 5), (1e-5, 10)])
def test_the_headline_warms_up_for_a_second_of_runs(monkeypatch, step_s, warmups):
    """A slow engine gets one warm-up run; a fast one (an idle GPU's clocks ramp within a
    second) as many as fill WARMUP_S, at most WARMUP_RUNS, before the three timed runs."""
    from types import SimpleNamespace

    import companion.bench as B

    clock = [0.0]
    monkeypatch.setattr(B.time, "perf_counter", lambda: clock[0])
    model = SimpleNamespace(config=SimpleNamespace(name="m", file_type="F32"),
                            tokenizer=SimpleNamespace(encode=lambda text, parse_special=False: [1] * 8))
    eng = _ClockEngine(clock, step_s)
    r = B.bench_engine(eng, model, prompt_tokens=8, decode_tokens=9, repeats=3)  # type: ignore[arg-type]
    assert eng.evals == warmups + 3  # one prefill per run
    assert r["decode_tok_per_s"] == pytest.approx(9 / (9 * step_s))
