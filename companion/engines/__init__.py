"""The engines that run the model: `reference` (numpy, reference.py), `native` (wgpu-py in this
process, native.py) and `browser` (WebGPU in the page, browser.py), behind one interface
(base.py); choice.py picks one for `auto` and the fallback when one fails. The names below are
the only list of them: settings, the CLI and the bridge read it from here."""

from __future__ import annotations

from typing import Literal, get_args

EngineName = Literal["reference", "native", "browser"]  # an engine that runs the model
EngineChoice = Literal["auto", "reference", "native", "browser"]  # what a user may ask for
ENGINE_NAMES: tuple[str, ...] = get_args(EngineName)
ENGINE_CHOICES: tuple[str, ...] = get_args(EngineChoice)

__all__ = ["ENGINE_CHOICES", "ENGINE_NAMES", "EngineChoice", "EngineName"]
