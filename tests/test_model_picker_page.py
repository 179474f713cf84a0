"""The page's model picker in headless Chromium against the real server and the real model list
(companion.model.registry in this test's COMPANION_HOME): what each model needs, which one is
in use, one that cannot run here (disabled, with its reason), switching, and a model's own
context length and chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest_web import FakeChatSession, artifact

from companion.bridge.models_hook import RegistryModelsHook
from companion.bridge.server import BridgeServer
from companion.gpu.fit import HEADROOM, MIB
from companion.model.registry import add_model, model_settings, set_model_settings
from companion.settings import Settings
from companion.testing import write_tiny_gguf

pytestmark = pytest.mark.browser


@pytest.fixture
def picker_server(tmp_path: Path):
    chatty = write_tiny_gguf(tmp_path / "chatty.gguf", name="chatty")
    long = write_tiny_gguf(tmp_path / "long.gguf", n_layer=2, n_embd=128, n_head=4, n_head_kv=2, n_ff=256,
                           context_length=1 << 20, name="long")  # fmt: skip
    add_model(chatty, "chatty")
    add_model(long, "long-context")
    set_model_settings("long-context", context_length=1 << 20)  # 256 MiB of KV cache per layer
    settings = Settings(model_path=chatty)
    switched: list[str] = []
    limits = {"max-storage-buffer-binding-size": 128 * MIB, "max-buffer-size": 256 * MIB}

    def switch(name: str) -> None:
        switched.append(name)

    hook = RegistryModelsHook(lambda: settings, switch, adapter=(limits, {"adapter_type": "DiscreteGPU"}),
                              free=HEADROOM + 600 * MIB)  # fmt: skip
    server = BridgeServer(FakeChatSession(), settings=settings, models=hook, character="Aiko")
    server.switched = switched  # type: ignore[attr-defined]
    with server:
        yield server


def test_picker_shows_fit_switches_and_saves_a_models_own_settings(page, picker_server):
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(picker_server.launch_url())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    page.click("#open-settings")
    card = "#model-picker .model-card"
    page.wait_for_selector(f"{card}[data-name='long-context']")

    # in use, fitting, and the one that cannot run here with its reason
    assert page.is_checked(f"{card}[data-name='chatty'] input[type=radio]")
    assert "in use" in page.inner_text(f"{card}[data-name='chatty']")
    assert "GPU ≈" in page.inner_text(f"{card}[data-name='chatty'] .model-mem")
    long_text = page.inner_text(f"{card}[data-name='long-context']")
    assert "Cannot run here" in long_text and "--context-length" in long_text
    assert page.is_disabled(f"{card}[data-name='long-context'] input[type=radio]")
    page.screenshot(path=str(artifact("page-model-picker.png")))

    # the long model's own context, lowered in its options, makes it runnable
    page.click(f"{card}[data-name='long-context'] .model-more")
    page.fill(f"{card}[data-name='long-context'] input[name=context_length]", "4096")
    page.click(f"{card}[data-name='long-context'] .model-save")
    page.wait_for_function(
        "!document.querySelector(\"#model-picker .model-card[data-name='long-context'] input[type=radio]\").disabled"
    )
    assert model_settings("long-context").context_length == 4096
    assert picker_server.switched == []  # not the model in use: nothing reloads

    # a custom template that does not compile is refused inline and nothing changes
    page.click(f"{card}[data-name='chatty'] .model-more")
    page.select_option(f"{card}[data-name='chatty'] select[name=chat_template]", "custom")
    page.fill(f"{card}[data-name='chatty'] textarea[name=template_text]", "{% for x in %}")
    page.click(f"{card}[data-name='chatty'] .model-save")
    page.wait_for_selector("#model-picker .drawer-note.is-error")
    assert model_settings("chatty").chat_template is None

    # choosing another model asks the app to switch
    page.check(f"{card}[data-name='long-context'] input[type=radio]")
    for _ in range(100):
        if picker_server.switched:
            break
        page.wait_for_timeout(50)
    assert picker_server.switched == ["long-context"]
    assert not errors


def test_the_settings_file_is_editable_in_the_page_and_checked_first(page, bridge_server):
    """The drawer's raw editor: shows settings.json, refuses an unknown name, a bad value, broken
    JSON and a program path (naming the problem, the file untouched), and saves a good edit."""
    import json

    from companion.settings import file_path

    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(bridge_server.launch_url())
    page.wait_for_selector("body[data-ready='1']", timeout=15000)
    page.click("#open-settings")
    page.click("#settings-file summary")
    page.wait_for_function("document.getElementById('settings-file-text').value.trim().startsWith('{')")
    assert str(file_path()) in page.inner_text("#settings-file-path")

    def save(text: str) -> str:
        page.fill("#settings-file-text", text)
        page.click("#settings-file-save")
        page.wait_for_function("!['', 'Checking…'].includes(document.getElementById('settings-file-note').textContent)")
        return page.inner_text("#settings-file-note")

    assert "unknown setting(s) 'temprature'" in save('{"temprature": 0.5}')
    assert "temperature" in save('{"temperature": -1}') and "is-error" in page.get_attribute("#settings-file-note", "class")
    assert "not valid JSON" in save('{"temperature": 0.5,')
    assert "name programs" in save('{"chromium": "/tmp/evil"}')
    assert not file_path().exists()  # nothing refused was written
    assert save('{\n  "temperature": 0.3,\n  "top_k": 12\n}') == "Saved"
    assert json.loads(file_path().read_text()) == {"temperature": 0.3, "top_k": 12}
    assert bridge_server.settings.temperature == 0.3 and bridge_server.saved_settings[-1].top_k == 12
    page.screenshot(path=str(artifact("page-settings-file.png")))
    assert not errors
