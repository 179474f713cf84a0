"""Errors a user can act on. The docstring of each class says what kind of problem it is;
the message says exactly what is wrong and what to do. Only the CLI / UI edge formats them."""


class CompanionError(Exception):
    """Something went wrong that the user can fix or should know about."""


class ModelError(CompanionError):
    """The model file cannot be used."""


class UnsupportedModelError(ModelError):
    """The model file is valid but uses something Companion does not implement."""


class TokenizerError(ModelError):
    """The model's tokenizer data is missing or inconsistent."""


class TemplateError(CompanionError):
    """The chat template cannot be rendered safely."""


class EngineError(CompanionError):
    """An inference engine failed; the caller may fall back to another engine."""


class EngineUnavailable(EngineError):
    """The engine cannot run here (no adapter, lost device, missing feature)."""


class StorageError(CompanionError):
    """The local database cannot be read or written."""


class CardError(CompanionError):
    """A character card is malformed or hostile and was not imported."""


class BridgeError(CompanionError):
    """A bridge message was malformed or not allowed."""
