"""A synthetic, realistic long agent conversation (no download, deterministic).

:func:`generate_conversation` writes an agent session the way a coding /
operations assistant sees one: user requests, assistant answers with code
blocks and numbers, assistant tool calls (``search_docs``, ``run_sql``,
``read_file``, ``run_tests``, ``get_weather``) each answered by a ``tool``
message carrying the call's id and a JSON result. Names, figures, file paths
and ids vary with the seed, so pages hold realistic, hard-to-guess text (OCR
cannot lean on repetition).

Messages are OpenAI/LangChain-style dicts, as :meth:`OpticalMemory.add` takes
them. The same ``seed`` always gives the same conversation; about 1M o200k
tokens generate in a few seconds.

A *needle* (a fact a later question needs) can be planted in a user turn at a
chosen depth, for needle-in-a-haystack checks::

    conv = generate_conversation(tokens=20_000, seed=1, needle_depth=0.2)
    conv.needle.fact     # "The passphrase for vault Kestrel is amber falcon."
    conv.messages[conv.needle.index]["content"]  # holds the fact
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from optical_memory.errors import InputError
from optical_memory.tokens import DEFAULT_TOKENIZER, get_counter

_PEOPLE = (
    "Amara Okafor", "Bastian Vogel", "Chen Wei", "Dolores Ibarra", "Eero Lindqvist",
    "Farah Haddad", "Gideon Marsh", "Hana Sato", "Ivo Petrov", "Jun Park", "Kofi Mensah",
    "Lena Fischer", "Mateo Rossi", "Nadia Rahman", "Oskar Nowak", "Priya Nair",
    "Quentin Moreau", "Rosa Delgado", "Sven Olsen", "Tariq Aziz", "Uma Iyer", "Viktor Horvat",
)
_SERVICES = (
    "billing-api", "auth-gateway", "search-indexer", "ledger-sync", "report-builder",
    "notification-hub", "inventory-svc", "checkout-web", "etl-nightly", "ml-scoring",
)
_CITIES = ("Lisbon", "Nairobi", "Osaka", "Montreal", "Tallinn", "Porto Alegre", "Hanoi", "Dublin")
_TABLES = ("orders", "invoices", "customers", "shipments", "refunds", "sessions", "events")
_FILES = (
    "src/{svc}/handlers.py", "src/{svc}/models.py", "deploy/{svc}/values.yaml",
    "tests/{svc}/test_api.py", "src/{svc}/config.toml", "docs/{svc}/RUNBOOK.md",
)
_TOPICS = (
    "the retry policy", "the cache eviction", "the nightly export", "the rate limiter",
    "the schema migration", "the on-call rotation", "the SLO dashboard", "the CSV importer",
    "the webhook signature check", "the batch size", "the connection pool", "the feature flag",
)
_VERBS = ("review", "speed up", "debug", "document", "refactor", "load-test", "roll back", "harden")
_CODE_WORDS = ("copper", "velvet", "amber", "silent", "crimson", "hollow", "golden", "frozen")
_CODE_NOUNS = ("lantern", "harbor", "meadow", "compass", "falcon", "orchard", "beacon", "glacier")
_VAULTS = ("Kestrel", "Marlin", "Juniper", "Osprey", "Cobalt", "Heron", "Saffron", "Tamarind")


@dataclass(frozen=True)
class Needle:
    """A planted fact: ``index`` is the message holding it; ``question`` asks
    for it and ``answer`` is the string a correct read-back contains."""

    index: int
    fact: str
    question: str
    answer: str
    keywords: str


@dataclass(frozen=True)
class Conversation:
    """messages: chat dicts in order; text_tokens: their total (tokenizer
    ``tokenizer``) counting each message's content and tool-call arguments."""

    messages: list[dict[str, Any]]
    text_tokens: int
    tokenizer: str
    seed: int
    needle: Needle | None = None


class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.calls = 0

    def pick(self, seq):
        return self.rng.choice(seq)

    def call_id(self) -> str:
        self.calls += 1
        return f"call_{self.calls:05d}_{self.rng.randrange(16**6):06x}"

    def user(self) -> str:
        r = self.rng
        svc, topic, verb = self.pick(_SERVICES), self.pick(_TOPICS), self.pick(_VERBS)
        who = self.pick(_PEOPLE)
        forms = (
            f"Can you {verb} {topic} in {svc}? {who} says p95 latency went from "
            f"{r.randint(80, 400)} ms to {r.randint(450, 2400)} ms after release {r.randint(1, 9)}."
            f"{r.randint(0, 40)}.{r.randint(0, 99)}.",
            f"Next: {topic} for {svc}. We process about {r.randint(2, 950)}k requests per hour "
            f"and {who} wants the error budget back under {r.choice((0.1, 0.5, 1.0, 2.5))}%.",
            f"{who} asked whether {svc} still reads {self.pick(_FILES).format(svc=svc)}; "
            f"please check and tell me what {topic} is set to.",
            f"Summarise what we changed in {svc} today, with numbers, for the standup at "
            f"{r.randint(8, 11)}:{r.choice(('00', '15', '30', '45'))}.",
        )
        return self.pick(forms)

    def assistant_text(self) -> str:
        r = self.rng
        svc, topic = self.pick(_SERVICES), self.pick(_TOPICS)
        n = r.randint(2, 5)
        steps = "\n".join(
            f"{i + 1}. {self.pick(_VERBS).capitalize()} {self.pick(_TOPICS)} "
            f"(owner: {self.pick(_PEOPLE)}, estimate {r.randint(1, 16)} h)"
            for i in range(n)
        )
        code = ""
        if r.random() < 0.45:
            var = self.pick(("max_retries", "batch_size", "timeout_s", "pool_size", "ttl_s"))
            code = (
                "\n\n```python\n"
                f"def configure_{svc.replace('-', '_')}(settings: dict) -> dict:\n"
                f"    settings = dict(settings)\n"
                f"    settings[{var!r}] = {r.randint(2, 500)}\n"
                f"    if settings.get('region') == {self.pick(_CITIES)!r}:\n"
                f"        settings['replicas'] = {r.randint(2, 12)}\n"
                f"    return settings\n"
                "```"
            )
        return (
            f"Here is my take on {topic} in {svc}. Throughput is {r.randint(100, 9000)} rps at "
            f"{r.randint(20, 95)}% CPU; the slowest endpoint takes {r.uniform(0.05, 4.0):.2f} s.\n"
            f"Plan:\n{steps}{code}"
        )

    def tool_call(self) -> tuple[dict[str, Any], dict[str, Any]]:
        r = self.rng
        svc = self.pick(_SERVICES)
        kind = self.pick(("search_docs", "run_sql", "read_file", "run_tests", "get_weather"))
        args: dict[str, Any]
        result: dict[str, Any]
        if kind == "search_docs":
            args = {"query": f"{self.pick(_TOPICS)} {svc}", "top_k": r.randint(3, 8)}
            result = {"hits": [
                {"doc": self.pick(_FILES).format(svc=svc), "score": round(r.uniform(0.3, 0.99), 3)}
                for _ in range(r.randint(2, 4))
            ]}
        elif kind == "run_sql":
            table = self.pick(_TABLES)
            args = {"sql": f"SELECT status, count(*) FROM {table} WHERE created_at > "
                           f"'2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}' GROUP BY status"}
            result = {"rows": [[s, r.randint(0, 99999)] for s in ("ok", "failed", "pending")],
                      "elapsed_ms": r.randint(3, 4000)}
        elif kind == "read_file":
            path = self.pick(_FILES).format(svc=svc)
            args = {"path": path}
            result = {"path": path, "lines": r.randint(20, 900),
                      "head": f"# {svc} settings\nmax_retries = {r.randint(1, 9)}\n"
                              f"timeout_s = {r.randint(1, 120)}\nowner = \"{self.pick(_PEOPLE)}\""}
        elif kind == "run_tests":
            args = {"target": f"tests/{svc}", "markers": self.pick(("not slow", "smoke", ""))}
            passed, failed = r.randint(10, 800), r.choice((0, 0, 0, 1, 2, 5))
            result = {"passed": passed, "failed": failed, "seconds": round(r.uniform(1, 300), 1)}
            if failed:
                result["first_failure"] = (
                    f"test_{self.pick(_TABLES)}_{r.randint(1, 99)}: "
                    f"AssertionError: {r.randint(0, 999)} != {r.randint(0, 999)}")
        else:
            city = self.pick(_CITIES)
            args = {"city": city}
            result = {"city": city, "temp_c": r.randint(-10, 38), "wind_kmh": r.randint(0, 90)}
        cid = self.call_id()
        call = {
            "role": "assistant",
            "content": f"Let me check with {kind}.",
            "tool_calls": [{"id": cid, "type": "function",
                            "function": {"name": kind, "arguments": json.dumps(args)}}],
        }
        answer = {"role": "tool", "tool_call_id": cid, "name": kind, "content": json.dumps(result)}
        return call, answer


def _message_text(message: dict[str, Any]) -> str:
    parts = [str(message.get("content") or "")]
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        parts.append(f"{fn.get('name', '')}({fn.get('arguments', '')})")
    return "\n".join(p for p in parts if p)


def generate_conversation(
    *,
    turns: int | None = None,
    tokens: int | None = None,
    seed: int = 0,
    needle_depth: float | None = None,
    tokenizer: str = DEFAULT_TOKENIZER,
) -> Conversation:
    """Generate an agent session of ``turns`` messages or about ``tokens`` text tokens.

    Exactly one of ``turns`` / ``tokens`` must be given. The session opens
    with a user turn; a tool call is always followed by its result.
    ``needle_depth`` in [0, 1] plants a fact in the user turn nearest that
    fraction of the session (0 = the first message).
    """
    if (turns is None) == (tokens is None):
        raise InputError(
            f"give exactly one of turns / tokens (got turns={turns!r}, tokens={tokens!r})")
    limit = turns if turns is not None else tokens
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 2:
        raise InputError(f"turns / tokens must be an int >= 2 (got {limit!r})")
    if needle_depth is not None and not 0.0 <= needle_depth <= 1.0:
        raise InputError(f"needle_depth must be in [0, 1] (got {needle_depth!r})")
    counter = get_counter(tokenizer)
    rng = random.Random(seed)
    w = _Writer(rng)
    messages: list[dict[str, Any]] = []
    total = 0

    def push(msg: dict[str, Any]) -> None:
        nonlocal total
        messages.append(msg)
        total += counter.count(_message_text(msg))

    def done() -> bool:
        return len(messages) >= turns if turns is not None else total >= tokens  # type: ignore[operator]

    while not done():
        push({"role": "user", "content": w.user()})
        for _ in range(rng.choice((0, 1, 1, 2))):
            if done():
                break
            call, answer = w.tool_call()
            push(call)
            push(answer)  # never separated from its call, even past the limit
        if not done():
            push({"role": "assistant", "content": w.assistant_text()})

    needle = None
    if needle_depth is not None:
        needle = _plant(messages, needle_depth, rng, counter)
        total = sum(counter.count(_message_text(m)) for m in messages)
    return Conversation(messages=messages, text_tokens=total, tokenizer=counter.name,
                        seed=seed, needle=needle)


def _plant(messages: list[dict[str, Any]], depth: float, rng: random.Random, counter) -> Needle:
    users = [i for i, m in enumerate(messages) if m["role"] == "user"]
    want = depth * (len(messages) - 1)
    index = min(users, key=lambda i: abs(i - want))
    vault = rng.choice(_VAULTS)
    # Words, not digits: a fact a reader either has or has not, that a CPU OCR
    # does not turn into a near miss by confusing 9 and 3.
    phrase = f"{rng.choice(_CODE_WORDS)} {rng.choice(_CODE_NOUNS)}"
    fact = f"The passphrase for vault {vault} is {phrase}."
    messages[index] = dict(messages[index], content=f"{messages[index]['content']} {fact}")
    return Needle(index=index, fact=fact, question=f"What is the passphrase for vault {vault}?",
                  answer=phrase, keywords=f"passphrase vault {vault}")


__all__ = ["Conversation", "Needle", "generate_conversation"]
