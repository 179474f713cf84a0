"""Chat templates render in jinja2's immutable sandbox; hostile ones fail clearly."""

from __future__ import annotations

import pytest

from companion.errors import TemplateError
from companion.model.chat_template import CHATML, ChatTemplate


def test_renders_golden_prompts(model, golden):
    for p in golden["prompts"]:
        msgs = [{"role": "system", "content": p["system"]}, {"role": "user", "content": p["user"]}]
        assert model.chat_template.render(msgs) == p["formatted_prompt"]


def test_default_system_prompt_of_the_template(model):
    out = model.chat_template.render([{"role": "user", "content": "hi"}])
    assert out.startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")
    assert out.endswith("<|im_start|>assistant\n")


def test_end_of_generation_ids(model):
    # GGUF eos (2) plus llama.cpp's rule: <|endoftext|> (0) and the FIM repo token <reponame> (4)
    assert model.chat_template.eog_ids == {0, 2, 4}


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.__class__.__init__.__globals__ }}",
        "{% set x = messages.append({'role': 'x'}) %}{{ x }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_hostile_templates_are_stopped(source):
    with pytest.raises(TemplateError, match="unsafe|failed to render"):
        ChatTemplate(source).render([{"role": "user", "content": "hi"}])


def test_template_that_loops_forever_is_stopped():
    with pytest.raises(TemplateError):
        ChatTemplate("{% for i in range(10**12) %}x{% endfor %}").render([])


def test_template_raise_exception_is_reported():
    t = ChatTemplate("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(TemplateError, match="roles must alternate"):
        t.render([{"role": "user", "content": "a"}])


def test_broken_template_syntax():
    with pytest.raises(TemplateError, match="does not compile"):
        ChatTemplate("{% for m in messages %}")


def test_oversized_template_rejected():
    with pytest.raises(TemplateError, match="hostile"):
        ChatTemplate("x" * 100_000)


def test_messages_must_be_strings():
    with pytest.raises(TemplateError, match="string 'role' and 'content'"):
        ChatTemplate(CHATML).render([{"role": "user", "content": 3}])


def test_chatml_fallback_when_gguf_has_none(tmp_path):
    from companion.model import load_model
    from companion.testing import write_tiny_gguf

    m = load_model(write_tiny_gguf(tmp_path / "t.gguf", chat_template=None))
    assert m.chat_template.render([{"role": "user", "content": "hi"}]) == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_template_that_expands_without_bound_is_cut_off():
    with pytest.raises(TemplateError, match="oversized"):
        ChatTemplate("{% for i in range(99999) %}{% for j in range(99999) %}xxxxxxxx{% endfor %}{% endfor %}").render([])
