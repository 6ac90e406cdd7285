"""Decoder over any OpenAI-compatible chat completions endpoint with image input.

Works with vLLM serving DeepSeek-OCR (natively since vLLM 0.11.1), Qwen-VL,
and hosted models such as GPT-4o. One POST to ``{base_url}/chat/completions``
per image (over ``httpx``), the image sent as a PNG data URL in an
``image_url`` content part. A request that fails in a way worth retrying (the
server not reachable, a timeout, HTTP 408/409/429 or 5xx) is retried with
exponential backoff and jitter, honouring ``Retry-After``; other HTTP errors
fail at once. Every failure is a :class:`~optical_memory.errors.DecodeError`.

The image is sent at its stored size (``upscale_to`` defaults to None here):
what a VLM reads at the page's aged resolution is the quantity of interest,
and upscaling would also change what the endpoint bills.
"""
from __future__ import annotations

import base64
import json
import logging
import os
import random
import time
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

#: HTTP statuses worth another try (as the openai SDK retries them).
RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
#: Longest wait between two tries (seconds), also for a server's Retry-After.
MAX_BACKOFF = 30.0

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
    timeout:     seconds for the HTTP request (read; connecting gets at most
                 10 s of it).
    max_retries: further tries after a retryable failure (connection error,
                 timeout, HTTP 408/409/429/5xx); 0 tries once.
    backoff:     first wait between tries in seconds, doubled each time (with
                 jitter; a ``Retry-After`` header wins, capped at 30 s).
    extra_body:  merged into the JSON body on top of the preset's (like the
                 openai client's ``extra_body``).
    upscale_to:  enlarge small images before sending; None (default) sends
                 the stored pixels.
    """

    name = "openai"
    #: Each read is its own HTTP request and client: ``decode_many`` reads
    #: pages in threads (requests in flight at once), not processes.
    thread_safe = True

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
        max_retries: int = 2,
        backoff: float = 0.5,
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
        if not (self.timeout > 0):
            raise InputError(f"timeout must be positive seconds (got {timeout})")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InputError(f"max_retries must be an int >= 0 (got {max_retries!r})")
        if not (backoff >= 0):
            raise InputError(f"backoff must be >= 0 seconds (got {backoff})")
        self.max_retries, self.backoff = max_retries, float(backoff)
        self.extra_body = _merge(p.extra_body, extra_body or {})
        self.strip_suffixes = p.strip_suffixes
        self.upscale_to = upscale_to

    @classmethod
    def availability(cls) -> bool | str:
        return True  # httpx is a dependency; reachability is known only when called

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
        reply, retrying what is worth retrying (see the module docstring);
        HTTP, network and JSON failures raise :class:`DecodeError`.
        Public so other stages (e.g. the NIAH answer stage) share one client."""
        import httpx

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        payload = json.dumps(body).encode("utf-8")
        timeout = httpx.Timeout(self.timeout, connect=min(10.0, self.timeout))
        with httpx.Client(timeout=timeout, headers=headers, trust_env=True) as client:
            for attempt in range(self.max_retries + 1):
                last = attempt == self.max_retries
                try:
                    resp = client.post(self.url, content=payload)
                except httpx.TimeoutException as exc:
                    if last:
                        raise DecodeError(f"openai decoder: no reply from {self.url} within "
                                          f"{self.timeout} s ({attempt + 1} tries)") from exc
                    self._wait(attempt, None, f"timeout ({type(exc).__name__})")
                    continue
                except httpx.TransportError as exc:
                    if last:
                        raise DecodeError(f"openai decoder: cannot reach {self.url}: {exc} "
                                          f"({attempt + 1} tries)") from exc
                    self._wait(attempt, None, f"{type(exc).__name__}: {exc}")
                    continue
                if resp.status_code >= 400:
                    if resp.status_code in RETRY_STATUSES and not last:
                        self._wait(attempt, resp.headers.get("retry-after"),
                                   f"HTTP {resp.status_code}")
                        continue
                    tries = f" ({attempt + 1} tries)" if attempt else ""
                    raise DecodeError(f"openai decoder: HTTP {resp.status_code} from {self.url}"
                                      f"{tries}: {resp.text[:500]}")
                return _reply_json(resp.content, self.url)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: str | None, why: str) -> None:
        delay = _retry_after(retry_after)
        if delay is None:
            delay = self.backoff * 2 ** attempt * (0.5 + random.random() / 2)
        delay = min(MAX_BACKOFF, delay)
        logger.warning("openai decoder: %s from %s; try %d of %d in %.1f s", why, self.url,
                       attempt + 2, self.max_retries + 1, delay)
        time.sleep(delay)


def _retry_after(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header given in seconds (dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _reply_json(raw: bytes, url: str) -> dict[str, Any]:
    try:
        reply = json.loads(raw)
    except ValueError as exc:
        raise DecodeError(f"openai decoder: reply from {url} is not JSON: {raw[:300]!r}") from exc
    if not isinstance(reply, dict):
        raise DecodeError(f"openai decoder: unexpected reply from {url}: {str(reply)[:300]}")
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
