"""Decoder over any OpenAI-compatible chat completions endpoint with image input.

Works with vLLM serving DeepSeek-OCR (natively since vLLM 0.11.1), Qwen-VL,
and hosted models such as GPT-4o. Only the standard library is used: one
POST to ``{base_url}/chat/completions`` per image, the image sent as a PNG
data URL in an ``image_url`` content part.

The image is sent at its stored size (``upscale_to`` defaults to None here):
what a VLM reads at the page's aged resolution is the quantity of interest,
and upscaling would also change what the endpoint bills.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from optical_memory.decode.base import (
    DecodeResult,
    ImageInput,
    clean_text,
    coerce_image,
    encode_image,
    upscale,
)
from optical_memory.errors import DecodeError, InputError

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_PROMPT = (
    "Transcribe all text in this image exactly as written, line by line. "
    "Output only the text."
)


@dataclass(frozen=True)
class Preset:
    """Request defaults for one served model family."""

    model: str | None
    prompt: str
    image_first: bool = True
    extra_body: dict[str, Any] = field(default_factory=dict)
    strip_suffixes: tuple[str, ...] = ()


PRESETS: dict[str, Preset] = {
    # DeepSeek-OCR under vLLM. Prompt and settings from the vLLM recipe
    # (https://docs.vllm.ai/projects/recipes/en/latest/DeepSeek/DeepSeek-OCR.html,
    # "Online OCR serving"): image part first, then "Free OCR."; greedy; the
    # release's n-gram no-repeat guard via the NGramPerReqLogitsProcessor that
    # the server must load (`vllm serve deepseek-ai/DeepSeek-OCR
    # --logits_processors vllm.model_executor.models.deepseek_ocr:NGramPerReqLogitsProcessor
    # --no-enable-prefix-caching --mm-processor-cache-gb 0`), whose arguments
    # travel in `vllm_xargs`; 128821/128822 are <td>/</td>, exempt so tables
    # may repeat. skip_special_tokens=False as in the recipe, so the
    # end-of-sentence marker can appear in the text and is stripped.
    "deepseek-ocr": Preset(
        model="deepseek-ai/DeepSeek-OCR",
        prompt="Free OCR.",
        image_first=True,
        extra_body={
            "skip_special_tokens": False,
            "vllm_xargs": {
                "ngram_size": 30,
                "window_size": 90,
                "whitelist_token_ids": [128821, 128822],
            },
        },
        strip_suffixes=("<｜end▁of▁sentence｜>",),
    ),
    "generic": Preset(model=None, prompt=DEFAULT_PROMPT, image_first=True),
}


class OpenAICompatDecoder:
    """Read a page through an OpenAI-compatible chat endpoint.

    base_url:    API root ending in /v1; default env OPENAI_BASE_URL, else
                 https://api.openai.com/v1.
    api_key:     bearer token; default env OPENAI_API_KEY; empty sends no
                 Authorization header (local vLLM).
    model:       served model name; default from the preset, else env
                 OPENAI_MODEL.
    preset:      "deepseek-ocr" or "generic" (prompt, image order, extra body).
    prompt:      text part sent with the image; default from the preset.
    image_first: put the image part before the prompt (DeepSeek-OCR's order).
    max_tokens:  completion limit; None omits it (vLLM then allows the rest
                 of the model's context, so a dense page is never cut short by
                 a too-small default, nor rejected by a too-large one).
    temperature: 0 = greedy.
    timeout:     seconds for the HTTP request.
    extra_body:  merged into the JSON body on top of the preset's (like the
                 openai client's ``extra_body``).
    upscale_to:  enlarge small images before sending; None (default) sends
                 the stored pixels.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        model: str | None = None,
        preset: str = "generic",
        prompt: str | None = None,
        image_first: bool | None = None,
        max_tokens: int | None = None,
        temperature: float = 0.0,
        timeout: float = 300.0,
        extra_body: dict[str, Any] | None = None,
        upscale_to: int | None = None,
    ) -> None:
        if preset not in PRESETS:
            raise InputError(f"unknown preset {preset!r} (known: {', '.join(sorted(PRESETS))})")
        p = PRESETS[preset]
        self.preset = preset
        self.base_url = (
            base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        self.model = model or p.model or os.environ.get("OPENAI_MODEL")
        if not self.model:
            raise InputError(
                "openai decoder needs a model: pass model=..., preset='deepseek-ocr', "
                "or set OPENAI_MODEL"
            )
        self.prompt = p.prompt if prompt is None else prompt
        self.image_first = p.image_first if image_first is None else bool(image_first)
        if max_tokens is not None and max_tokens <= 0:
            raise InputError(f"max_tokens must be a positive int or None (got {max_tokens})")
        self.max_tokens = max_tokens
        self.temperature = float(temperature)
        self.timeout = float(timeout)
        self.extra_body = _merge(p.extra_body, extra_body or {})
        self.strip_suffixes = p.strip_suffixes
        self.upscale_to = upscale_to

    @classmethod
    def availability(cls) -> bool | str:
        return True  # stdlib only; reachability is known only when called

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def build_request(self, png: bytes) -> dict[str, Any]:
        """The JSON body sent for one PNG image."""
        image_part: dict[str, Any] = {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode("ascii")},
        }
        parts = [image_part]
        if self.prompt:
            text_part: dict[str, Any] = {"type": "text", "text": self.prompt}
            parts = [image_part, text_part] if self.image_first else [text_part, image_part]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": parts}],
            "temperature": self.temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return _merge(body, self.extra_body)

    def decode(self, image: ImageInput) -> DecodeResult:
        t0 = time.perf_counter()
        img = coerce_image(image)
        size = img.size
        img, scale = upscale(img, self.upscale_to)
        body = self.build_request(encode_image(img))
        reply = self.post(body)
        text, finish = completion_text(reply)
        for suffix in self.strip_suffixes:
            text = text.replace(suffix, "")
        if finish == "length":
            logger.warning("openai decoder: completion cut at max_tokens (%s) for %s",
                           self.max_tokens, size)
        return DecodeResult(
            text=clean_text(text),
            decoder=self.name,
            seconds=time.perf_counter() - t0,
            meta={
                "model": reply.get("model", self.model),
                "size": size,
                "scale": scale,
                "finish_reason": finish,
                "usage": reply.get("usage") or {},
            },
        )

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST a chat-completion ``body`` to the endpoint and return the JSON
        reply; HTTP, network and JSON failures raise :class:`DecodeError`.
        Public so other stages (e.g. the NIAH answer stage) share one client."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace") if exc.fp is not None else ""
            raise DecodeError(
                f"openai decoder: HTTP {exc.code} from {self.url}: {detail[:500]}"
            ) from exc
        except TimeoutError as exc:
            raise DecodeError(
                f"openai decoder: no reply from {self.url} within {self.timeout} s") from exc
        except urllib.error.URLError as exc:
            raise DecodeError(f"openai decoder: cannot reach {self.url}: {exc.reason}") from exc
        try:
            reply = json.loads(raw)
        except ValueError as exc:
            raise DecodeError(
                f"openai decoder: reply from {self.url} is not JSON: {raw[:300]!r}"
            ) from exc
        if not isinstance(reply, dict):
            raise DecodeError(
                f"openai decoder: unexpected reply from {self.url}: {str(reply)[:300]}")
        return reply


def completion_text(reply: dict[str, Any]) -> tuple[str, str | None]:
    """(message text, finish_reason) of the first choice; content parts joined."""
    try:
        choice = reply["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        raise DecodeError(
            f"openai decoder: reply has no choices[0].message.content: {str(reply)[:300]}"
        ) from exc
    if content is None:
        content = ""
    elif isinstance(content, list):  # some servers return content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    elif not isinstance(content, str):
        raise DecodeError(f"openai decoder: message content is {type(content).__name__}, not text")
    return content, choice.get("finish_reason")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; values in ``extra`` win."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out
