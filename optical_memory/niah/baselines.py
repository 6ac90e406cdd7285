"""Text-side contexts at a token budget, the baselines optical memory is
measured against: a history with needles planted at spread ages, and

- :func:`truncate`: the most recent messages that fit (a tool result is
  never kept without its call);
- :func:`extractive`: a query-free TF-IDF sentence selector (offline, no
  model): the last ``keep_last`` messages verbatim, then the older
  sentences with the highest mean TF-IDF weight per word (tf in the
  sentence, idf over messages: numbers and rare names weigh most) until the
  budget is full, shown in history order;
- :func:`summarize`: a summary by a model behind an OpenAI-compatible
  endpoint (chunks of the history summarised in turn, the result cut to the
  budget).

Costs follow the memory's accounting (:mod:`optical_memory.context.budget`):
a text message costs its tokens plus
:data:`~optical_memory.context.budget.MESSAGE_OVERHEAD`, a turn's text being
its content plus one ``→ name(arguments) [id]`` line per tool call.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optical_memory.context.budget import MESSAGE_OVERHEAD
from optical_memory.errors import InputError
from optical_memory.niah.answer import AnswerEndpoint
from optical_memory.niah.needles import QUESTION_ONE, make_needles
from optical_memory.tokens import TextCounter

HISTORY_KINDS = ("chat", "docs")
#: Needle ages as shares of the history (tokens after the needle / all),
#: roughly geometric so that every budget from 4k up sees a needle change sides.
AGE_SHARES = (0.004, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.5, 0.75, 0.95)
_SENTENCE_BREAK = re.compile(r"(?<=[.!?][\"')\]])\s+|(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[^\W_]+")


def message_text(msg: Mapping[str, Any]) -> str:
    """The text the memory stores for a chat message: its content, then one
    ``→ name(arguments) [id]`` line per tool call."""
    lines = [str(msg.get("content") or "")] if msg.get("content") else []
    for call in msg.get("tool_calls") or ():
        fn = call.get("function", {})
        lines.append(f"→ {fn.get('name', '')}({fn.get('arguments', '')}) [{call.get('id', '')}]")
    return "\n".join(lines)


def message_cost(msg: Mapping[str, Any], counter: TextCounter) -> int:
    """What a message costs as text in a context (tokens + framing)."""
    return counter.count(message_text(msg)) + MESSAGE_OVERHEAD


@dataclass(frozen=True)
class Planted:
    """A needle in a history: message ``index``; ``age_tokens``: what the
    messages after it cost as text (0 = the newest message)."""

    key: str
    value: str
    text: str
    question: str
    index: int
    age_tokens: int


@dataclass(frozen=True)
class History:
    """A history with needles; ``tokens``: what it all costs as text."""

    kind: str
    messages: tuple[dict[str, Any], ...]
    needles: tuple[Planted, ...]
    tokens: int
    seed: int


def _docs_messages(tokens: int, counter: TextCounter, chunk: int = 400) -> list[dict[str, Any]]:
    """``pydoc_data.topics`` (repeated when short) as user messages of about
    ``chunk`` tokens, whole paragraphs each: an agent reading documentation."""
    from optical_memory.niah.haystack import corpus_text

    paras = [p.strip() for p in corpus_text("pydoc").split("\n\n") if p.strip()]
    out: list[dict[str, Any]] = []
    buf: list[str] = []
    total, size, i = 0, 0, 0
    while total < tokens:
        p = paras[i % len(paras)]
        i += 1
        n = counter.count(p)
        if buf and size + n > chunk:
            msg = {"role": "user", "content": "\n\n".join(buf)}
            out.append(msg)
            total += message_cost(msg, counter)
            buf, size = [], 0
        buf.append(p)
        size += n
    return out


def build_history(kind: str, tokens: int, counter: TextCounter, *, seed: int = 0,
                  ages: Sequence[float] = AGE_SHARES) -> History:
    """A history of about ``tokens`` text tokens of ``kind`` (``"chat"``: the
    synthetic agent session; ``"docs"``: Python's documentation as messages)
    with one RULER needle (a 7-digit number under a unique key) appended to
    the message at each age share (user turns only in a chat), as a sentence
    of its own (after a line break when the message does not end one)."""
    from optical_memory.niah.haystack import banned_text

    if kind not in HISTORY_KINDS:
        raise InputError(f"history kind must be one of {HISTORY_KINDS} (got {kind!r})")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2000:
        raise InputError(f"history tokens must be an int >= 2000 (got {tokens!r})")
    if not ages or not all(0.0 < a < 1.0 for a in ages):
        raise InputError(f"ages must be shares in (0, 1) (got {list(ages)})")
    if kind == "chat":
        from optical_memory.conversation import generate_conversation

        msgs = [dict(m) for m in generate_conversation(tokens=tokens, seed=seed,
                                                       tokenizer=counter.name).messages]
    else:
        msgs = _docs_messages(tokens, counter)
    ns = make_needles("multikey", "number", seed=seed, distractors=len(ages) - 1,
                      haystack=banned_text("chat" if kind == "chat" else "pydoc"))
    needles = [*ns.targets, *ns.distractors]
    costs = [message_cost(m, counter) for m in msgs]
    after, acc = [0] * len(msgs), 0
    for i in range(len(msgs) - 1, -1, -1):
        after[i] = acc
        acc += costs[i]
    free = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    placed: list[tuple[int, Any]] = []
    for share, needle in zip(sorted(ages), needles):
        want = acc * share
        i = min(free, key=lambda j: (abs(after[j] - want), j))
        free.remove(i)
        body = str(msgs[i]["content"]).rstrip()  # the needle starts a sentence of its own
        msgs[i] = dict(msgs[i], content=body + (" " if body.endswith((".", "!", "?")) else "\n")
                       + needle.text)
        placed.append((i, needle))
    costs = [message_cost(m, counter) for m in msgs]
    total = sum(costs)
    out = []
    for i, needle in sorted(placed, key=lambda p: p[0]):
        out.append(Planted(needle.key, needle.value, needle.text,
                           QUESTION_ONE.format(type="numbers", key=needle.key), i,
                           sum(costs[i + 1:])))
    return History(kind, tuple(msgs), tuple(out), total, seed)


@dataclass(frozen=True)
class TextContext:
    """A text-only context: what it shows, what it costs, what it carries.

    carried_tokens: the history it carries, as text tokens (whole messages
    for truncation; the selected sentences for the extractive selector).
    chat: the context as chat messages, as a model is sent it (``messages``
    of them; an extract or summary is one user message).
    """

    method: str
    text: str
    tokens: int
    carried_tokens: int
    messages: int
    chat: tuple[dict[str, Any], ...] = ()


def _check_budget(budget: int) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise InputError(f"budget must be a positive int (got {budget!r})")


def truncate(messages: Sequence[Mapping[str, Any]], budget: int,
             counter: TextCounter) -> TextContext:
    """The most recent messages whose cost fits ``budget``; a tool result
    whose call did not fit is left out too."""
    _check_budget(budget)
    kept: list[int] = []
    total = 0
    for i in range(len(messages) - 1, -1, -1):
        cost = message_cost(messages[i], counter)
        if total + cost > budget:
            break
        kept.append(i)
        total += cost
    kept.reverse()
    calls = {c.get("id") for i in kept for c in messages[i].get("tool_calls") or ()}
    while kept and messages[kept[0]].get("role") == "tool" \
            and messages[kept[0]].get("tool_call_id") not in calls:
        total -= message_cost(messages[kept[0]], counter)
        kept.pop(0)
    text = "\n".join(message_text(messages[i]) for i in kept)
    return TextContext("truncation", text, total, total - MESSAGE_OVERHEAD * len(kept), len(kept),
                       tuple(dict(messages[i]) for i in kept))


def sentences(text: str) -> list[str]:
    """``text`` cut where ``.``, ``!`` or ``?`` meets whitespace, and at
    newlines (stripped, non-empty; ``3.40`` stays whole)."""
    return [s.strip() for s in _SENTENCE_BREAK.split(text) if s and s.strip()]


def _words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def tfidf_scores(docs: Sequence[str], units: Sequence[tuple[int, str]]) -> list[float]:
    """Each unit's (``(doc index, sentence)``) mean TF-IDF weight per word:
    tf = 1 + ln(the word's count in the sentence), idf = ln(N / docs holding
    it). Numbers count as words, so a unique value or name weighs most; a
    word repeated across the history (a tool's boilerplate) weighs least."""
    df: Counter[str] = Counter()
    for d in docs:
        df.update(set(_words(d)))
    n = max(1, len(docs))
    out = []
    for _, s in units:
        words = _words(s)
        tf = Counter(words)
        out.append(sum((1 + math.log(c)) * math.log(n / df[w]) for w, c in tf.items())
                   / len(words) if words else 0.0)
    return out


def extractive(messages: Sequence[Mapping[str, Any]], budget: int, counter: TextCounter, *,
               keep_last: int = 8) -> TextContext:
    """A query-free extractive compressor: the last ``keep_last`` messages
    verbatim, then older sentences by :func:`tfidf_scores` (highest first,
    exact repeats skipped) while they fit, in history order, as one message."""
    _check_budget(budget)
    tail = truncate(messages[len(messages) - keep_last:] if keep_last else [], budget, counter)
    room = budget - tail.tokens - MESSAGE_OVERHEAD
    older = messages[:len(messages) - tail.messages]
    docs = [message_text(m) for m in older]
    units = [(i, s) for i, d in enumerate(docs) for s in sentences(d)]
    scores = tfidf_scores(docs, units)
    order = sorted(range(len(units)), key=lambda u: (-scores[u], u))
    chosen: list[int] = []
    seen: set[str] = set()
    used = 0
    for u in order:
        s = units[u][1]
        if s in seen:
            continue
        cost = counter.count(s)  # a joining newline mostly merges with the end: trimmed below
        if used + cost > room:
            continue
        seen.add(s)
        chosen.append(u)
        used += cost
        if room - used < 4:
            break
    chosen.sort()
    extract = "\n".join(units[u][1] for u in chosen)
    while chosen and counter.count(extract) > room:  # joins counting more than estimated
        chosen.remove(min(chosen, key=lambda u: (scores[u], -u)))
        extract = "\n".join(units[u][1] for u in chosen)
    cost = counter.count(extract) + MESSAGE_OVERHEAD if chosen else 0
    text = "\n".join(t for t in (extract, tail.text) if t)
    carried = tail.carried_tokens + (cost - MESSAGE_OVERHEAD if chosen else 0)
    head = ({"role": "user", "content": extract},) if chosen else ()
    return TextContext("extractive", text, tail.tokens + cost, carried,
                       tail.messages + (1 if chosen else 0), head + tail.chat)


SUMMARY_PROMPT = ("Summarise this part of a conversation for the assistant who will continue "
                  "it. Keep every name, number, code and decision exactly. At most {words} words.")


def summarize(messages: Sequence[Mapping[str, Any]], budget: int, counter: TextCounter,
              endpoint: AnswerEndpoint, *, chunk_tokens: int = 24_000) -> TextContext:
    """A model's summary of the history within ``budget``: the history cut
    into chunks of at most ``chunk_tokens`` text tokens, each summarised by
    the model at ``endpoint`` in its share of the budget (``max_tokens``),
    the summaries joined in history order and cut to the budget (a model may
    overrun what it was asked). Raises
    :class:`~optical_memory.errors.DecodeError` on HTTP or reply errors."""
    from optical_memory.decode.openai_compat import OpenAICompatDecoder, completion_text

    _check_budget(budget)
    if chunk_tokens < 1:
        raise InputError(f"chunk_tokens must be >= 1 (got {chunk_tokens})")
    chunks: list[list[str]] = [[]]
    size = 0
    for m in messages:
        line = f"[{m.get('role')}] {message_text(m)}"
        n = counter.count(line)
        if chunks[-1] and size + n > chunk_tokens:
            chunks.append([])
            size = 0
        chunks[-1].append(line)
        size += n
    share = max(1, (budget - MESSAGE_OVERHEAD) // len(chunks))
    client = OpenAICompatDecoder(base_url=endpoint.base_url, api_key=endpoint.api_key,
                                 model=endpoint.model, timeout=endpoint.timeout)
    parts = []
    for chunk in chunks:
        body = {"model": endpoint.model, "temperature": endpoint.temperature,
                "max_tokens": share,
                "messages": [{"role": "system",
                              "content": SUMMARY_PROMPT.format(words=max(1, share * 3 // 4))},
                             {"role": "user", "content": "\n".join(chunk)}]}
        body.update(endpoint.extra_body)
        text, _ = completion_text(client.post(body))
        ids = counter.encode(text.strip())
        parts.append(counter.decode(ids[:share]))
    summary = "\n".join(p for p in parts if p)
    room = cut = budget - MESSAGE_OVERHEAD
    while summary and counter.count(summary) > room:  # a cut prefix may re-count longer
        summary = counter.decode(counter.encode(summary)[:max(0, cut)])
        cut -= 1
    tokens = counter.count(summary) + MESSAGE_OVERHEAD if summary else 0
    return TextContext("summary", summary, tokens, tokens - MESSAGE_OVERHEAD if summary else 0,
                       1 if summary else 0,
                       ({"role": "user", "content": summary},) if summary else ())


__all__ = [
    "AGE_SHARES",
    "HISTORY_KINDS",
    "SUMMARY_PROMPT",
    "History",
    "Planted",
    "TextContext",
    "build_history",
    "extractive",
    "message_cost",
    "message_text",
    "sentences",
    "summarize",
    "tfidf_scores",
    "truncate",
]
