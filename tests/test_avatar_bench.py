"""`companion avatar bench`: its JSON has the figures the README's frame-time table is made of,
with sane values, and the native stream slows to the busy rate while the model decodes. Small
and short on purpose (64-pixel frames, a tiny random model, one-second windows): no timing
thresholds, only what the pacing guarantees on any machine."""

from __future__ import annotations

import json

import pytest

from companion.avatar.stream import BUSY_FPS


def _check_stream(s: dict, busy: bool) -> None:
    assert s["busy"] is busy and s["frames"] >= 2, s
    assert 0 < s["render_ms_p50"] <= s["render_ms_p95"], s
    assert s["round_trip_ms_p50"] >= s["render_ms_p50"] * 0.5, s
    if busy:  # the stream asks for 1/10 s or more, and the page waits that long: never faster
        assert s["interval_ms_median"] >= 1000 / BUSY_FPS, s
        assert s["fps"] <= BUSY_FPS * 1.05, s


@pytest.mark.gpu
def test_avatar_bench_json(tmp_path, gpu_adapter_info, monkeypatch):
    from click.testing import CliRunner

    from companion.cli import main
    from companion.testing import write_tiny_gguf

    model = tmp_path / "tiny.gguf"
    write_tiny_gguf(model)
    monkeypatch.setenv("COMPANION_MODEL_PATH", str(model))
    monkeypatch.setenv("COMPANION_HOME", str(tmp_path / "home"))
    got = CliRunner().invoke(main, ["avatar", "bench", "--json", "--size", "64", "--frames", "3", "--stream", "1", "--decode", "1"])
    assert got.exit_code == 0, got.output
    r = json.loads(got.output)
    assert r["size"] == 64 and r["adapter"] and r["machine"]["date"]
    alone = r["alone"]
    assert alone["frames"] == 3 and 0 < alone["frame_ms_p50"] <= alone["frame_ms_p95"] and alone["cpu_ms_per_frame"] >= 0
    _check_stream(r["stream_idle"], busy=False)
    _check_stream(r["stream_busy"], busy=True)
    dec = r["while_decoding"]
    for alone_case in ("alone", "alone_between", "alone_again"):  # around each case, for drift
        assert dec[alone_case]["decode_tok_s"] > 0 and dec[alone_case]["tokens"] > 0, dec
    for case, busy in (("busy", True), ("unadapted", False)):
        assert dec[case]["decode_tok_s"] >= 0 and dec[case]["decode_tok_s_alone"] > 0, dec[case]
        slow = dec[case]["decode_slowdown"]
        assert slow is None or abs(slow - (1 - dec[case]["decode_tok_s"] / dec[case]["decode_tok_s_alone"])) < 0.01, dec[case]
        _check_stream(dec[case]["avatar"], busy)
        assert "render_thread_cpu_ms_per_frame" in dec[case]["avatar"]
    ad = r["adaptation_while_decoding"]
    assert ad["busy_fps"] <= BUSY_FPS * 1.05 and ad["busy_interval_ms"] >= 1000 / BUSY_FPS, ad
    assert isinstance(ad["adapts"], bool)


def test_benches_run_where_a_loop_already_runs():
    """The benches' asyncio work also runs from a thread with a running event loop (Playwright's
    sync API in the same test worker, a notebook), where asyncio.run refuses."""
    import asyncio

    from companion._asyncrun import run_coroutine

    async def inner() -> int:
        await asyncio.sleep(0)
        return 7

    async def outer() -> int:
        return run_coroutine(inner)

    assert run_coroutine(inner) == 7
    assert run_coroutine(outer) == 7  # outer's own call finds outer's loop running
