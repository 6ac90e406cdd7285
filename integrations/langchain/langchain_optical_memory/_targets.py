"""Which vision target bills a chat model's images: a table from the model's
provider and name to a target of :func:`optical_memory.tokens.list_targets`.

The model name is read from the model object (``model_name`` / ``model`` /
``model_id``, as the provider packages name it) and the provider from
LangChain's tracing parameters (``ls_provider``). The first pattern found in
the lower-cased model name wins; then the provider's default; else ``None``
(the caller's default). A name the table does not know is not guessed: e.g.
``gpt-4o-mini`` bills images at a different rate from ``gpt-4o`` and no
registered target has that rate, so it falls back to the default.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: (substring of the model name, target); the first match wins, so longer
#: names come before their prefixes.
MODEL_TARGETS: tuple[tuple[str, str], ...] = (
    ("deepseek-ocr", "deepseek-ocr:base"),
    ("gpt-4.1-mini", "openai:gpt-4.1-mini"),
    ("gpt-4.1-nano", "openai:gpt-4.1-nano"),
    ("gpt-4.1", "openai:gpt-4.1"),
    ("o4-mini", "openai:o4-mini"),
    ("gpt-4o-mini", ""),  # billed at its own rate: no registered target
    ("gpt-4o", "openai:gpt-4o"),
    ("claude", "anthropic:claude"),
    ("gemini", "gemini"),
    ("qwen2.5-vl", "qwen2.5-vl"),
    ("qwen2.5vl", "qwen2.5-vl"),
    ("qwen2-vl", "qwen2.5-vl"),
)
#: Provider (``ls_provider``) → target, for model names the table does not know.
PROVIDER_TARGETS: dict[str, str] = {
    "anthropic": "anthropic:claude",
    "bedrock_anthropic": "anthropic:claude",
    "google_genai": "gemini",
    "google_vertexai": "gemini",
    "google_anthropic_vertex": "anthropic:claude",
}


def model_identity(model: Any) -> tuple[str | None, str | None]:
    """``(provider, model name)`` of a chat model, as far as it says."""
    provider = name = None
    try:
        params = model._get_ls_params()  # LangChain's tracing parameters
        provider, name = params.get("ls_provider"), params.get("ls_model_name")
    except Exception:  # a model without them, or one that needs a call to know
        pass
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        if name:
            break
        value = getattr(model, attr, None)
        name = value if isinstance(value, str) else None
    return (str(provider) if provider else None), (str(name) if name else None)


def infer_target(model: Any, extra: Mapping[str, str] | None = None) -> str | None:
    """The target for ``model`` (``None`` when the table does not know it).
    ``extra`` maps model-name substrings (or provider names) to targets and
    is looked at first."""
    provider, name = model_identity(model)
    lowered = (name or "").lower()
    for pattern, target in [*(extra or {}).items(), *MODEL_TARGETS]:
        if lowered and pattern.lower() in lowered:
            return target or None
    if extra and provider is not None and provider in extra:
        return extra[provider]
    return PROVIDER_TARGETS.get((provider or "").lower())


__all__ = ["MODEL_TARGETS", "PROVIDER_TARGETS", "infer_target", "model_identity"]
