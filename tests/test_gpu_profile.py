"""`python -m companion.gpu.profile`: where a decode step's time goes, per kind of dispatch, on
whatever adapter there is (lavapipe in CI), for both matmul layouts."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("layout", ["rows", "splitk"])
def test_profile_reports_every_dispatch_kind(gpu_adapter_info, tmp_path, capsys, layout):
    from companion.gpu.profile import main
    from companion.testing import write_tiny_gguf

    path = write_tiny_gguf(tmp_path / "tiny.gguf", n_layer=2, context_length=256)
    main(["--model", str(path), "--tokens", "3", "--prompt", "5", "--layout", layout, "--repeat", "3", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert r["layout"] == layout and r["alone_repeat"] == 3
    assert r["dispatches_per_token"] == 1 + 5 * 2 + 1 + 1  # embed, 5 per layer, head, sampler
    assert sum(k["dispatches"] for k in r["kinds"]) == r["dispatches_per_token"]
    assert {"embed", "sample"} <= {k["kind"] for k in r["kinds"]}
    assert r["one_pass_ms"] > 0 and r["encode_ms"] > 0


def test_profile_rejects_a_repeat_below_one(capsys):
    from companion.gpu.profile import main

    with pytest.raises(SystemExit):
        main(["--model", "x.gguf", "--repeat", "0"])
    assert "--repeat must be at least 1" in capsys.readouterr().err
