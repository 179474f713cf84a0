"""Per-model settings, the memory estimate checked before loading, and the one-line reason for
a model that cannot run: registry, catalog, engines, the plan endpoint, the CLI and the bridge."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from companion.bridge.messages import ModelConfigure, ModelItem, ModelList, Models, ModelUse, decode
from companion.bridge.models_hook import RegistryModelsHook
from companion.cli import main
from companion.errors import CompanionError, ModelError, TemplateError
from companion.gpu.fit import HEADROOM, MIB, ModelDoesNotFit, gpu_fit, reference_fit
from companion.model import GGUFModel
from companion.model.registry import (
    add_model,
    apply_model_settings,
    model_settings,
    name_of,
    remove_model,
    set_model_settings,
)
from companion.settings import Settings
from companion.testing import write_tiny_gguf

WEBGPU_DEFAULT = {"max-storage-buffer-binding-size": 128 * MIB, "max-buffer-size": 256 * MIB}


@pytest.fixture
def long_model(tmp_path: Path) -> Path:
    """A small model trained for a very long context: its KV cache is what does not fit."""
    return write_tiny_gguf(tmp_path / "long.gguf", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256,
                             context_length=1 << 20, name="long-context")  # fmt: skip


@pytest.fixture
def chat_model(tmp_path: Path) -> Path:
    return write_tiny_gguf(tmp_path / "chatty.gguf", name="chatty")


# --- the estimate and the verdicts -------------------------------------------------------------


def test_kv_cache_per_layer_over_the_binding_limit_names_the_longest_context_that_fits(long_model):
    m = GGUFModel(long_model)
    per_token = 2 * 32 * 4  # one layer's keys: 2 KV heads x head_dim 32 x f32
    fit = gpu_fit(m, 1 << 20, WEBGPU_DEFAULT, shares_system_memory=False)
    assert not fit.ok
    assert "\n" not in fit.reason and "KV cache per layer" in fit.reason
    assert fit.max_context == (128 * MIB) // per_token
    assert f"--context-length {fit.max_context}" in fit.reason
    # the suggestion really fits, and one token more does not
    assert gpu_fit(m, fit.max_context, WEBGPU_DEFAULT, False).ok
    assert not gpu_fit(m, fit.max_context + 1, WEBGPU_DEFAULT, False).ok
    with pytest.raises(ModelDoesNotFit, match="context length"):
        fit.raise_unless_ok()


def test_total_is_checked_against_the_memory_of_cpu_and_integrated_adapters(chat_model):
    m = GGUFModel(chat_model)
    fit = gpu_fit(m, 256, WEBGPU_DEFAULT, shares_system_memory=True, free=HEADROOM + 1)
    assert not fit.ok and "to spare" in fit.reason
    assert gpu_fit(m, 256, WEBGPU_DEFAULT, shares_system_memory=True, free=HEADROOM + 64 * MIB).ok
    # a discrete GPU's memory is not reported by WebGPU: the total is only reported
    unknown = gpu_fit(m, 256, WEBGPU_DEFAULT, shares_system_memory=False, free=1)
    assert unknown.ok and any("does not report" in c for c in unknown.checked)


def test_reference_needs_grow_with_the_context_and_the_limit_is_suggested(long_model):
    m = GGUFModel(long_model)
    small, big = reference_fit(m, 1024, free=1 << 40), reference_fit(m, 8192, free=1 << 40)
    assert small.ok and big.ok
    assert big.needs["kv_cache"] == 8 * small.needs["kv_cache"]
    assert big.needs["weights"] == small.needs["weights"]
    free = HEADROOM + big.needs["total"] - 1
    tight = reference_fit(m, 8192, free=free)
    assert not tight.ok and tight.max_context is not None and tight.max_context < 8192
    assert reference_fit(m, tight.max_context, free=free).ok


def test_a_model_too_big_at_any_context_says_so_in_one_line(chat_model):
    fit = reference_fit(GGUFModel(chat_model), 256, free=HEADROOM)
    assert not fit.ok and fit.max_context is None
    assert "too large for the reference engine" in fit.reason and "\n" not in fit.reason


# --- per-model settings ------------------------------------------------------------------------


def test_per_model_settings_are_kept_checked_and_forgotten_with_the_model(chat_model):
    add_model(chat_model, "chatty")
    assert model_settings("chatty").context_length is None
    set_model_settings("chatty", context_length=128, chat_template="chatml")
    own = model_settings("chatty")
    assert (own.context_length, own.chat_template) == (128, "chatml")
    with pytest.raises(ModelError, match="use 64 to 256"):
        set_model_settings("chatty", context_length=100000)
    with pytest.raises(TemplateError):
        set_model_settings("chatty", chat_template="{% for x in %}")
    with pytest.raises(ModelError, match="at most"):
        set_model_settings("chatty", chat_template="{{ 'x' }}" * 20000)
    assert model_settings("chatty").chat_template == "chatml"  # a refused change keeps the old one
    set_model_settings("chatty", clear=("chat_template",))
    assert model_settings("chatty").chat_template is None and model_settings("chatty").context_length == 128
    remove_model("chatty")
    add_model(chat_model, "chatty")
    assert model_settings("chatty").context_length is None


def test_a_sessions_context_and_template_come_from_its_model(chat_model):
    from companion.app import build_session

    add_model(chat_model, "chatty")
    custom = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}[assistant] "
    set_model_settings("chatty", context_length=128, chat_template=custom)
    settings = Settings(model_path=chat_model, engine="reference", context_length=256)
    assert name_of(chat_model) == "chatty"
    session = build_session(settings, memory=False)
    assert session.engine.n_ctx == 128
    prompt = session.template.render([{"role": "user", "content": "hi"}])
    assert prompt == "[user] hi\n[assistant] "
    # without its own settings, the general ones apply
    set_model_settings("chatty", clear=("context_length", "chat_template"))
    m = GGUFModel(chat_model)
    assert apply_model_settings(settings, m).context_length == 256
    assert "<|im_start|>" in m.chat_template.render([{"role": "user", "content": "hi"}])


def test_a_user_template_replaces_the_files_and_can_be_taken_back(tmp_path):
    plain = write_tiny_gguf(tmp_path / "plain.gguf", chat_template=None, name="plain")
    m = GGUFModel(plain)
    msgs = [{"role": "user", "content": "go"}]
    before = m.chat_template.render(msgs)
    m.use_chat_template("{{ messages[0]['content'] }}!")
    assert m.can_chat and m.chat_template.render(msgs) == "go!"
    m.use_chat_template(None)
    assert m.chat_template.render(msgs) == before


# --- the engines refuse before loading ---------------------------------------------------------


def test_reference_engine_refuses_before_reading_weights(long_model, monkeypatch):
    from companion.engines import choice
    from companion.gpu import fit

    monkeypatch.setattr(fit, "available_memory", lambda: HEADROOM + 8 * MIB)
    with pytest.raises(ModelDoesNotFit, match="context length"):
        choice.create_engine("reference", GGUFModel(long_model), n_ctx=1 << 20)


def test_native_engine_refuses_before_any_upload_on_the_real_adapter(gpu_adapter, long_model):
    from companion.engines.native import NativeEngine

    with pytest.raises(ModelDoesNotFit) as err:
        NativeEngine(GGUFModel(long_model), n_ctx=1 << 20)
    msg = str(err.value)
    assert "\n" not in msg and "KV cache per layer" in msg and "--context-length" in msg


def test_nothing_can_run_it_gives_both_reasons_in_one_line(long_model, monkeypatch):
    from companion.engines.choice import fallback_factory
    from companion.errors import EngineUnavailable
    from companion.gpu import fit

    monkeypatch.setattr(fit, "available_memory", lambda: HEADROOM + 8 * MIB)
    make = fallback_factory(GGUFModel(long_model), 1 << 20, "no-such-adapter-xyz", lambda m: None)
    with pytest.raises(EngineUnavailable, match="no engine can run this model here: native: .*; reference: ") as err:
        make()
    assert "\n" not in str(err.value)


def test_the_plan_endpoint_answers_a_page_whose_limits_are_too_small(long_model):
    from companion.bridge.server import BridgeServer
    from companion.engines.browser import PlanAssets

    assets = PlanAssets(GGUFModel(long_model), 1 << 20)
    with BridgeServer(None, plan=assets.plan_json, model_path=long_model) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        q = "features=&max-storage-buffer-binding-size=134217728&max-buffer-size=268435456"
        conn.request("GET", f"/plan.json?{q}", headers={"Host": f"127.0.0.1:{server.port}",
                                                      "Cookie": f"{server.cookie_name}={server.secret}"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        conn.close()
    assert resp.status == 422
    assert "KV cache per layer" in body["error"] and "--context-length" in body["error"]
    assert assets.plan is None  # nothing was built for it


# --- the CLI and the bridge hook ---------------------------------------------------------------


def test_cli_model_set_and_list_show_own_settings_and_fit(chat_model):
    r = CliRunner()
    assert r.invoke(main, ["model", "add", str(chat_model), "--name", "chatty"]).exit_code == 0
    out = r.invoke(main, ["model", "set", "chatty", "--context-length", "192", "--template", "chatml"])
    assert out.exit_code == 0, out.output
    assert "context length 192, template chatml" in out.output
    bad = r.invoke(main, ["model", "set", "chatty", "--template", "/nonexistent/t.jinja"])
    assert bad.exit_code == 1 and "neither auto, chatml nor a file" in bad.output
    listed = r.invoke(main, ["model", "list", "--json"])
    rows = {m["name"]: m for m in json.loads(listed.output)["models"]}
    row = rows["chatty"]
    assert row["run_context"] == 192 and row["chat_template"] == "chatml" and row["runs"]
    assert row["reference"]["needs"]["kv_cache"] > 0
    text = r.invoke(main, ["model", "list"]).output
    assert "own settings: context 192, template chatml" in text
    assert r.invoke(main, ["model", "set", "chatty", "--reset"]).exit_code == 0
    assert model_settings("chatty").context_length is None


def test_models_hook_lists_switches_and_refuses_what_cannot_run(chat_model, long_model):
    add_model(chat_model, "chatty")
    add_model(long_model, "long")
    set_model_settings("long", context_length=1 << 20)
    switched: list[str] = []
    settings = Settings(model_path=chat_model)
    hook = RegistryModelsHook(lambda: settings, switched.append, adapter=(WEBGPU_DEFAULT, {"adapter_type": "DiscreteGPU"}),
                              free=HEADROOM + 64 * MIB)  # fmt: skip
    items = {m.name: m for m in hook.list()}
    assert items["chatty"].in_use and items["chatty"].runs
    assert not items["long"].runs and "native" not in items["long"].reason.split(":")[0]
    assert "KV cache per layer" in items["long"].reason
    with pytest.raises(CompanionError, match="cannot run here"):
        hook.use("long")
    with pytest.raises(CompanionError, match="no model named"):
        hook.use("nope")
    hook.use("chatty")
    assert switched == ["chatty"]
    hook.configure("chatty", 128, None, [])  # the model in use: reloaded so it takes effect
    assert switched == ["chatty", "chatty"]
    hook.configure("long", 4096, None, [])
    assert switched == ["chatty", "chatty"]
    assert {m.name: m for m in hook.list()}["long"].runs


def test_model_messages_validate_and_refuse_bad_input():
    assert isinstance(decode('{"type": "model_list"}', "page"), ModelList)
    assert decode('{"type": "model_use", "name": "smollm2-135m"}', "page").name == "smollm2-135m"
    c = decode('{"type": "model_configure", "name": "x", "context_length": 512, "reset": ["chat_template"]}', "page")
    assert isinstance(c, ModelConfigure) and c.reset == ["chat_template"]
    from companion.bridge.messages import MessageRejected

    for bad in ('{"type": "model_use", "name": "../../etc/passwd"}',
                '{"type": "model_configure", "name": "x", "context_length": 8}',
                '{"type": "model_configure", "name": "x", "reset": ["model_path"]}',
                '{"type": "models", "items": []}'):  # fmt: skip
        with pytest.raises(MessageRejected):
            decode(bad, "page")
    m = Models(items=[ModelItem(name="a", arch="llama", file_type="Q4_1", parameters=1, size_bytes=1, can_chat=True,
                                max_context=256, run_context=256)])  # fmt: skip
    assert isinstance(decode(m.model_dump_json(), "core"), Models)
    assert isinstance(ModelUse(name="a"), ModelUse)


def test_the_desktop_app_switches_model_and_keeps_the_conversation(tmp_path):
    import time

    from companion.shell.app import App

    first = write_tiny_gguf(tmp_path / "first.gguf", name="first")
    second = write_tiny_gguf(tmp_path / "second.gguf", seed=1, name="second")
    add_model(first, "first")
    add_model(second, "second")
    set_model_settings("second", context_length=128)
    app = App(Settings(model_path=first, engine="reference", context_length=256))
    app.load()
    chat = app.server.chat
    assert chat is not None and chat.model.path == first
    conversation = chat.memory.conversation_id
    assert {m.name for m in app.server.models.list() if m.in_use} == {"first"}
    app.use_model("second")
    deadline = time.monotonic() + 60
    while (app.server.chat is chat or app.server.models.switching) and time.monotonic() < deadline:
        time.sleep(0.05)
    new = app.server.chat
    assert new is not chat and new.model.path == second
    assert new.engine.n_ctx == 128  # its own context length
    assert new.memory.conversation_id == conversation
    assert Settings.load().model_path == second  # remembered for the next start
    assert {m.name for m in app.server.models.list() if m.in_use} == {"second"}
    app.shutdown()


def test_adding_a_model_that_cannot_run_here_says_why(chat_model, monkeypatch):
    from companion.gpu import fit

    monkeypatch.setattr(fit, "available_memory", lambda: HEADROOM + 1)
    out = CliRunner().invoke(main, ["model", "add", str(chat_model), "--name", "chatty"])
    assert out.exit_code == 0, out.output
    assert "added chatty" in out.output
    (note,) = [line for line in out.output.splitlines() if line.startswith("note: it cannot run here")]
    assert "to spare" in note


def test_settings_file_text_is_checked_whole_before_it_is_written(monkeypatch):
    from companion.settings import SettingsError, file_path, read_file_text, replace_file_text

    current = Settings()
    assert read_file_text().strip() == "{}"
    for bad, why in (('{"temprature": 1}', "unknown setting"), ("[1, 2]", "one JSON object"),
                     ('{"top_p": 7}', "top_p"), ('{"peer_python": "/bin/sh"}', "name programs"),
                     ("{", "not valid JSON")):  # fmt: skip
        with pytest.raises(SettingsError, match=why):
            replace_file_text(bad, current)
        assert not file_path().exists()
    monkeypatch.setenv("COMPANION_TOP_K", "5")  # the environment still wins over the file
    new = replace_file_text('{"top_k": 9, "temperature": 0.2}', current)
    assert (new.top_k, new.temperature) == (5, 0.2)
    assert json.loads(read_file_text()) == {"top_k": 9, "temperature": 0.2}


def test_a_model_that_fails_to_load_leaves_the_old_one_running_and_chosen(tmp_path):
    import time

    from companion.shell.app import App

    first = write_tiny_gguf(tmp_path / "first.gguf", name="first")
    broken = write_tiny_gguf(tmp_path / "broken.gguf", seed=2, name="broken")
    add_model(first, "first")
    add_model(broken, "broken")
    app = App(Settings(model_path=first, engine="reference", context_length=256))
    app.load()
    chat = app.server.chat
    broken.write_bytes(broken.read_bytes()[:4000])  # damaged after it was added
    app.use_model("broken")
    deadline = time.monotonic() + 60
    while app.server.models.switching and time.monotonic() < deadline:
        time.sleep(0.05)
    assert app.server.chat is chat and app.current.model_path == first
    assert Settings.load().model_path == first  # the next start runs the model that works
    app.shutdown()


def test_the_first_reference_engine_on_a_machine_says_it_compiles(chat_model, monkeypatch):
    from companion.engines import _cpu_kernels, choice

    said: list[str] = []
    monkeypatch.setattr(_cpu_kernels, "compiled_before", lambda: False)
    choice.create_engine("reference", GGUFModel(chat_model), n_ctx=64, report=said.append)
    assert any("compiling its CPU kernels" in s for s in said)
    said.clear()
    monkeypatch.setattr(_cpu_kernels, "compiled_before", lambda: True)
    choice.create_engine("reference", GGUFModel(chat_model), n_ctx=64, report=said.append)
    assert not any("compiling" in s for s in said)
