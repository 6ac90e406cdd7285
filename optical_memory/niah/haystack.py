"""Haystacks cut to a token length, with needles put in at a depth.

Sources: ``"pydoc"`` (the ~106k-token ``pydoc_data.topics`` that ships with
every CPython), a folder of text files, or ``"chat"`` (the synthetic agent
conversation of :mod:`optical_memory.conversation`, so pages are made by the
memory's own compaction of chat turns).

Placement follows gkamradt/LLMTest_NeedleInAHaystack: the haystack is cut to
``length`` minus the needles' tokens with the named tokenizer (repeated when
the source is shorter), the insertion point is ``depth`` % of its tokens,
moved back to the end of the sentence before it; depth 0 puts the needles
first and depth 100 appends them. In a chat the needles are appended to the
user turn whose end is nearest the insertion point (user turns end with a
sentence).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optical_memory.errors import EmptyInputError, InputError
from optical_memory.niah.needles import NeedleSet
from optical_memory.tokens import TextCounter

TEXT_SUFFIXES = (".txt", ".md", ".rst", ".text")
_SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s)")


@dataclass(frozen=True)
class Placed:
    """Where a run of needle text sits: message ``index`` (0 for a text
    haystack), characters ``[start, end)`` of that message's content."""

    index: int
    start: int
    end: int


@dataclass(frozen=True)
class Haystack:
    """A haystack with its needles in.

    kind:     ``"text"`` (``text`` set) or ``"chat"`` (``messages`` set).
    target:   where the queried needles' block sits.
    distractors: where each distractor needle sits.
    depth_actual: the block's start as a share of the haystack's tokens.
    """

    source: str
    kind: str
    length: int
    depth: float
    text: str | None
    messages: tuple[dict[str, Any], ...] | None
    target: Placed
    distractors: tuple[Placed, ...]
    depth_actual: float


def source_name(source: str) -> str:
    """Short name of a haystack source for file names and plots."""
    if source in ("pydoc", "chat"):
        return source
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).name).strip("-.")
    return f"dir-{name or 'root'}"


@functools.lru_cache(maxsize=4)
def corpus_text(source: str) -> str:
    """The raw text of a ``"pydoc"`` or folder source."""
    if source == "pydoc":
        from pydoc_data import topics

        return "\n\n".join(topics.topics[k].strip() for k in sorted(topics.topics))
    folder = Path(source)
    if not folder.is_dir():
        raise InputError(
            f"haystack must be 'pydoc', 'chat' or a folder of text files (got {source!r})")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    parts = []
    for p in files:
        try:
            parts.append(p.read_text(encoding="utf-8").strip())
        except (UnicodeDecodeError, OSError):
            continue
    text = "\n\n".join(t for t in parts if t)
    if not text:
        raise EmptyInputError(
            f"no readable UTF-8 text in {source} (looked for {', '.join(TEXT_SUFFIXES)} files)"
        )
    return text


def cut_to_tokens(text: str, tokens: int, counter: TextCounter) -> str:
    """``text`` repeated as needed and cut to exactly ``tokens`` tokens."""
    if tokens < 1:
        raise InputError(
            f"length leaves no room for the haystack ({tokens} tokens after the needles)")
    ids = counter.encode(text)
    if not ids:
        raise EmptyInputError("the haystack source is empty")
    sep = counter.encode("\n\n")
    out = list(ids)
    while len(out) < tokens:
        out += sep + ids
    return counter.decode(out[:tokens])


def sentence_end_before(text: str, pos: int) -> int:
    """Index just after the last sentence end at or before ``pos`` (0 if none)."""
    best = 0
    for m in _SENTENCE_END.finditer(text, 0, min(len(text), pos + 1)):
        best = m.end()
    return best


def _insert(text: str, pieces: Sequence[tuple[int, str]]) -> str:
    """Insert each ``(pos, sentence)``: at 0 → before the text, at len → after,
    else after the sentence end at ``pos``, separated by one space."""
    for pos, piece in sorted(pieces, key=lambda p: p[0], reverse=True):
        if pos <= 0:
            text = piece + " " + text
        elif pos >= len(text):
            text = text.rstrip() + " " + piece
        else:
            text = text[:pos] + " " + piece + text[pos:]
    return text


def _spread(depth: float, n: int) -> list[float]:
    """Depths of ``n`` distractors: evenly spaced around the target's."""
    return [(depth + 100.0 * (i + 1) / (n + 1)) % 100.0 for i in range(n)]


def _check(length: int, depth: float) -> None:
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise InputError(f"context length must be an int >= 1 (got {length!r})")
    if not 0.0 <= float(depth) <= 100.0:
        raise InputError(f"depth must be a percentage in [0, 100] (got {depth!r})")


def needle_tokens(needles: NeedleSet, counter: TextCounter) -> int:
    texts = [needles.block, *(n.text for n in needles.distractors)]
    return sum(counter.count(" " + t) for t in texts)


def build_text_haystack(source: str, length: int, depth: float, needles: NeedleSet,
                        counter: TextCounter, *, omit_targets: bool = False) -> Haystack:
    """A text haystack of ``length`` tokens (needles included) from ``source``.

    ``omit_targets``: a negative control: the target block is not put in (its
    would-be place is still reported in ``target``, as an empty range).
    """
    _check(length, depth)
    budget = length - needle_tokens(needles, counter)
    text = cut_to_tokens(corpus_text(source), budget, counter)
    ids = counter.encode(text)

    def char_at(d: float) -> int:
        if d >= 100.0:
            return len(text)
        k = int(len(ids) * d / 100.0)
        return sentence_end_before(text, len(counter.decode(ids[:k])))

    marker = "\x00NEEDLE\x00"
    pieces = [(char_at(d), n.text) for d, n in zip(_spread(depth, len(needles.distractors)),
                                                     needles.distractors)]
    pieces.append((char_at(depth), marker))
    text = _insert(text, pieces)
    start = text.index(marker)
    if omit_targets:  # drop the marker and the space put beside it
        if start == 0:
            text = text[len(marker) + 1:]
        else:
            text = text[:start - 1] + text[start + len(marker):]
            start -= 1
        target = Placed(0, start, start)
    else:
        text = text.replace(marker, needles.block)
        target = Placed(0, start, start + len(needles.block))
    placed = tuple(Placed(0, text.index(n.text), text.index(n.text) + len(n.text))
                   for n in needles.distractors)
    before = counter.count(text[:target.start])
    return Haystack(source, "text", length, float(depth), text, None, target, placed,
                    before / max(1, counter.count(text)))


def _message_tokens(msg: dict[str, Any], counter: TextCounter) -> int:
    """Tokens of the text the memory stores for a turn: the content, then
    one ``→ name(arguments) [id]`` line per tool call."""
    lines = [str(msg.get("content") or "")] if msg.get("content") else []
    for call in msg.get("tool_calls") or ():
        fn = call.get("function", {})
        lines.append(f"→ {fn.get('name', '')}({fn.get('arguments', '')}) [{call.get('id', '')}]")
    return counter.count("\n".join(lines))


def build_chat_haystack(length: int, depth: float, needles: NeedleSet, counter: TextCounter,
                        *, seed: int = 0, omit_targets: bool = False) -> Haystack:
    """A synthetic agent session of at most ``length`` tokens (needles
    included), the needles appended to user turns at their depths."""
    from optical_memory.conversation import generate_conversation

    _check(length, depth)
    budget = length - needle_tokens(needles, counter)
    if budget < 2:
        raise InputError(f"length {length} leaves no room for a conversation after the needles")
    conv = generate_conversation(tokens=budget, seed=seed, tokenizer=counter.name)
    msgs = [dict(m) for m in conv.messages]
    sizes = [_message_tokens(m, counter) for m in msgs]
    while len(msgs) > 1 and (sum(sizes) > budget or msgs[-1].get("tool_calls")):
        msgs.pop()
        sizes.pop()
    ends, total = [], 0
    for s in sizes:
        total += s
        ends.append(total)
    users = [i for i, m in enumerate(msgs) if m["role"] == "user"]

    def turn_at(d: float) -> int:
        want = total * d / 100.0
        return min(users, key=lambda i: (abs(ends[i] - want), i))

    target_turn = turn_at(depth)
    additions: dict[int, list[str]] = {}
    for d, n in zip(_spread(depth, len(needles.distractors)), needles.distractors):
        additions.setdefault(turn_at(d), []).append(n.text)
    target = Placed(target_turn, 0, 0)
    for i in sorted(set(additions) | {target_turn}):
        content = str(msgs[i]["content"]).rstrip()
        extra = list(additions.get(i, []))
        if i == target_turn and not omit_targets:
            extra.insert(0, needles.block)
        for piece in extra:
            content += " " + piece
        msgs[i] = dict(msgs[i], content=content)
        if i == target_turn:
            at = content.find(needles.block) if not omit_targets else len(content)
            end = at + len(needles.block) if not omit_targets else at
            target = Placed(i, at, end)
    placed = []
    for d, n in zip(_spread(depth, len(needles.distractors)), needles.distractors):
        i = turn_at(d)
        at = str(msgs[i]["content"]).index(n.text)
        placed.append(Placed(i, at, at + len(n.text)))
    final = [_message_tokens(m, counter) for m in msgs]
    before = (sum(final[:target.index])
              + counter.count(str(msgs[target.index]["content"])[:target.start]))
    return Haystack("chat", "chat", length, float(depth), None, tuple(msgs), target,
                    tuple(placed), before / max(1, sum(final)))


def build_haystack(source: str, length: int, depth: float, needles: NeedleSet,
                   counter: TextCounter, *, seed: int = 0, omit_targets: bool = False) -> Haystack:
    """:func:`build_chat_haystack` for ``"chat"``, else :func:`build_text_haystack`."""
    if source == "chat":
        return build_chat_haystack(length, depth, needles, counter, seed=seed,
                                   omit_targets=omit_targets)
    return build_text_haystack(source, length, depth, needles, counter, omit_targets=omit_targets)


def banned_text(source: str) -> str:
    """Text whose words needles must avoid: the whole source (a chat's
    vocabulary is that of a long generated session)."""
    if source == "chat":
        from optical_memory.conversation import generate_conversation

        return _chat_vocabulary(generate_conversation)
    return corpus_text(source)


@functools.lru_cache(maxsize=1)
def _chat_vocabulary(generate) -> str:
    conv = generate(tokens=60_000, seed=0)
    return "\n".join(str(m.get("content") or "") for m in conv.messages)


__all__ = [
    "TEXT_SUFFIXES",
    "Haystack",
    "Placed",
    "banned_text",
    "build_chat_haystack",
    "build_haystack",
    "build_text_haystack",
    "corpus_text",
    "cut_to_tokens",
    "needle_tokens",
    "sentence_end_before",
    "source_name",
]
