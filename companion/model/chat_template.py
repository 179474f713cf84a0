"""Chat templates from the GGUF, rendered in jinja2's immutable sandbox, and the model's
end-of-generation ids (GGUF eos/eot/eom plus llama.cpp's rule for control tokens)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.exceptions import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from companion.errors import TemplateError
from companion.model.tokenizer import Metadata, Tokenizer

# Used when a GGUF carries no template (ChatML, as most instruct models).
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Control-token texts that llama.cpp treats as end of generation (llama-vocab.cpp: EOT and
# EOG detection, plus the FIM repo/sep tokens it also adds to the EOG set).
EOG_TEXTS = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
    "<|end_of_text|>", "</s>", "<|eom_id|>", "<|return|>", "<|call|>",
    "<|fim_pad|>", "<fim-pad>", "<|repo_name|>", "<reponame>", "<fim-repo>", "<REPO>",
}  # fmt: skip

MAX_TEMPLATE_CHARS = 64 * 1024  # a real template is a few KB; larger ones are hostile
MAX_OUTPUT_CHARS = 4 * 1024 * 1024


def has_chatml_tokens(tk: Tokenizer) -> bool:
    """True when the vocabulary has ChatML's control tokens (the fallback template fits)."""
    return {"<|im_start|>", "<|im_end|>"} <= {tk.tokens[i] for i in tk.special_ids}


def base_model_message(name: str) -> str:
    """The one-line message for a model that cannot chat."""
    return (
        f"{name} has no chat template (a base model): it can complete raw text "
        "(companion --headless, parity) but not chat; choose an instruct model with --model"
    )


def _raise(message: str) -> None:
    raise TemplateError(f"chat template refused the conversation: {message}")


class ChatTemplate:
    """Renders chat messages into the model's prompt format."""

    def __init__(self, source: str, bos: str = "", eos: str = "", eog_ids: Iterable[int] = (), unavailable: str = ""):
        """unavailable: a base model's template: it knows the end ids, and render() raises
        TemplateError with this message."""
        self.unavailable = unavailable
        if len(source) > MAX_TEMPLATE_CHARS:
            raise TemplateError(
                f"chat template is {len(source)} characters (limit {MAX_TEMPLATE_CHARS}); "
                "refusing it as hostile"
            )
        self.source = source
        self.bos, self.eos = bos, eos
        self.eog_ids = frozenset(eog_ids)
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = _raise
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            self._template = env.from_string(source)
        except JinjaTemplateError as exc:
            raise TemplateError(f"chat template does not compile: {exc}") from exc

    @classmethod
    def from_metadata(cls, meta: Metadata, tk: Tokenizer, override: str | None = None) -> ChatTemplate:
        """The template a GGUF file carries (ChatML where it has none but its vocabulary has
        ChatML's tokens) and its end ids; a base model's refuses to render (one-line message).
        override: the user's choice for this model, "chatml" or a template's text."""
        source = CHATML if override == "chatml" else (override or meta("tokenizer.chat_template"))
        unavailable = ""
        if not source:
            if not has_chatml_tokens(tk):
                unavailable = base_model_message(str(meta("general.name", "this model")))
            source = CHATML

        def text(key: str) -> str:
            i = meta(key)
            return tk.tokens[int(i)] if i is not None and 0 <= int(i) < tk.n_vocab else ""

        eog = {
            int(i)
            for key in ("tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id")
            if (i := meta(key)) is not None and 0 <= int(i) < tk.n_vocab
        }
        eog |= {i for i in tk.special_ids if tk.tokens[i] in EOG_TEXTS}
        return cls(source, text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id"), eog, unavailable)

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for messages [{"role": ..., "content": ...}, ...]; TemplateError for
        a base model (no template)."""
        if self.unavailable:
            raise TemplateError(self.unavailable)
        for m in messages:
            if not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
                raise TemplateError(f"chat message needs string 'role' and 'content': {m!r:.200}")
        try:
            # stream the output so a template that expands without bound is cut off early
            parts: list[str] = []
            size = 0
            for piece in self._template.generate(
                messages=[dict(m) for m in messages],
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos,
                eos_token=self.eos,
            ):
                size += len(piece)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateError("chat template produced an oversized prompt; refusing it as hostile")
                parts.append(piece)
            out = "".join(parts)
        except SecurityError as exc:
            raise TemplateError(
                f"chat template tried to do something unsafe and was stopped ({exc}); "
                "use a trusted model file or pass --chat-template"
            ) from exc
        except TemplateError:
            raise
        except (JinjaTemplateError, TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
            raise TemplateError(f"chat template failed to render: {exc.__class__.__name__}: {exc}") from exc
        except OverflowError as exc:  # the sandbox's range() limit
            raise TemplateError(f"chat template refused as hostile: {exc}") from exc
        except RecursionError as exc:
            raise TemplateError("chat template recursed too deeply; refusing it as hostile") from exc
        return out


__all__ = ["CHATML", "ChatTemplate", "jinja2"]
