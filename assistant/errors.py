"""Errors a user can meet. Each message says what is wrong and what to do."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class: the CLI and the app show the message, never a traceback."""

    code = "assistant_error"


class CorpusError(AssistantError):
    code = "corpus_error"


class IndexMissingError(AssistantError):
    code = "index_missing"


class IndexStaleError(AssistantError):
    code = "index_stale"


class IndexCorruptError(AssistantError):
    code = "index_corrupt"


class ModelUnavailableError(AssistantError):
    code = "model_unavailable"


class ConfigError(AssistantError):
    code = "config_error"


class InvalidQuestionError(AssistantError):
    code = "invalid_question"
