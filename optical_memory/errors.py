"""Typed errors. Every error raised on bad input is an :class:`OpticalMemoryError`.

Messages say the actual values, e.g. ``unknown target 'foo' (known: ...)``.
"""
from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def after_commit(what: str, exc: BaseException) -> str:
    """Log follow-up work that failed after a write committed and return the
    warning a result carries (the write stands: callers must not redo it)."""
    message = f"{what} did not finish ({type(exc).__name__}: {exc}); the next call retries it"
    logger.warning("%s", message, exc_info=exc)
    return message


class OpticalMemoryError(Exception):
    """Base class of every error this package raises on purpose.

    ``params``: the names of API parameters the message mentions as they are
    spelled in Python (e.g. ``keep_last``), so a front end can show its own
    names for them (the CLI shows ``--keep-last``)."""

    params: tuple[str, ...] = ()


class InputError(OpticalMemoryError, ValueError):
    """The caller's input is empty, malformed or out of limits."""


class EmptyInputError(InputError):
    """Input holds nothing to store or render (empty or whitespace only)."""


class UnknownTargetError(InputError, KeyError):
    """A target / mode / tokenizer name that is not registered (a decoder
    name: :class:`UnknownDecoderError`)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class UnknownDecoderError(UnknownTargetError):
    """A decoder name that is not registered (the message lists the known ones)."""


class ConfigError(OpticalMemoryError, ValueError):
    """An inconsistent configuration (e.g. a page too small for one line)."""


class DependencyMissingError(OpticalMemoryError, RuntimeError):
    """An optional dependency (extra, system package) is needed but absent.

    The message names what to install.
    """


class DecodeError(OpticalMemoryError, RuntimeError):
    """A decoder failed to read a page back."""


class VocabularyError(OpticalMemoryError, RuntimeError):
    """A tokenizer vocabulary is missing or fails its sha256 check."""


class CheckpointError(OpticalMemoryError, RuntimeError):
    """A model checkpoint has missing, unexpected or mis-shaped tensors."""


class VisionTokensError(OpticalMemoryError, ValueError):
    """A vision-token blob is corrupt or is not one this package writes
    (safetensors with one ``vision_tokens`` tensor and its metadata)."""
