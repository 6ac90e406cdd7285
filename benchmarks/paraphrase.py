"""Paraphrase recall: does ``retrieve()`` find a fact from a question that shares
no content word with it, with semantic search on (and how does keyword search
alone do on the same questions)?

48 English facts, each with a question written to share no content word with
it (checked here: no word of the question outside a short list of function
words equals a word of the fact or shares its first 5 letters; CJK: no
shared character bigram). Half are the **tuning** part (the fusion was chosen
on it), half **held out**. Each part plants 8 facts in each of three
haystack kinds, one scope per kind:

- **doc**: a document of 5-7 pages of Python reference prose (``pydoc_data``
  topics; even places for tuning, odd for held out), facts at random depths;
- **chat**: the package's synthetic agent session (``generate_conversation``:
  tool calls, code, numbers), facts as user turns;
- **tool**: the same kind of session, facts inside tool results (a JSON
  field or a markdown table cell).

Chats are paged with ``compact(force=True)`` (``keep_last=4``). Each question
is asked with ``retrieve(k=3)`` twice: ``semantic=False`` (BM25) and
``semantic=True`` (all-MiniLM-L6-v2 passage vectors fused with BM25). top-3 /
top-1: a hit among the first 3 / the first is on a page holding the fact;
text: a top-3 ``Hit.text`` holds the whole fact. Four Russian and four
Chinese facts are planted in a document of that language's prose (the
held-out material of ``benchmarks/retrieval.py``) and reported apart
(MiniLM is an English model).

``--scale N,...`` also times exact vector search over N stored passages
(random unit vectors, so no model runs): reading the scope's vectors from the
store plus the numpy product, per query.

Run: ``python benchmarks/paraphrase.py [--pg URL] [--scale 1000,10000,50000]``
(``--pg`` defaults to ``$OPTICAL_MEMORY_TEST_PG_URL``); writes
``benchmarks/results/paraphrase.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optical_memory import OpticalMemory, generate_conversation
from optical_memory.retrieve import MiniLMRanker, SemanticIndex
from optical_memory.scope import Scope
from optical_memory.store import NewItem, open_store

HERE = Path(__file__).resolve().parent
KINDS = ("doc", "chat", "tool")
CHAT_TOKENS = 20_000
#: Characters of a doc haystack (about 8 pages in English, 4 in Russian and Chinese).
DOC_CHARS = {"en": 80_000, "ru": 40_000, "zh": 24_000}

F = tuple[str, str]  # (fact, question)
FACTS: dict[str, dict[str, list[F]]] = {
    "tuning": {
        "doc": [
            ("The spare key to the boat shed hangs behind the calendar in the kitchen.",
             "where can I find what unlocks the place we store the canoe"),
            ("Maria's flight to Lisbon departs at 6:40 on Thursday morning.",
             "when does her plane to Portugal leave"),
            ("Our dentist moved her practice to a building opposite the central train station.",
             "where is the tooth doctor's new office located"),
            ("The wifi password at the cabin is written on a sticker under the router.",
             "how do I get online at the holiday lodge"),
            ("Grandfather was allergic to penicillin and carried a card saying so.",
             "what medication was my mother's dad unable to take"),
            ("The quarterly budget review was postponed because the auditor fell ill.",
             "why was the finance meeting delayed"),
            ("Tom's bicycle was stolen from outside the library last Tuesday.",
             "what happened to his bike near the book lending building"),
            ("The kids' swimming lessons start again after the winter holidays in January.",
             "when do the children resume classes at the pool"),
        ],
        "chat": [
            ("My sister is getting married in Vienna next June.",
             "where is the wedding of my sibling taking place"),
            ("I can't eat peanuts, I had a severe reaction to them as a child.",
             "what food am I allergic to"),
            ("We adopted a grey cat from the shelter and named her Pixel.",
             "what is our new pet called"),
            ("The car needs its tyres changed before the first snow.",
             "what must be done to the vehicle ahead of winter"),
            ("Please remind me that the landlord raises the rent by ten percent in March.",
             "how much more will the apartment cost soon"),
            ("My laptop battery only lasts about forty minutes now.",
             "how long does the notebook computer run unplugged"),
            ("Our team offsite will be held at a vineyard near Bordeaux.",
             "where is the company retreat happening"),
            ("I switched my phone contract to a cheaper provider last week.",
             "did I change mobile carriers recently"),
        ],
        "tool": [
            ("Invoice 7731 was paid twice by mistake and a refund is pending.",
             "which bill got settled double and awaits money back"),
            ("The production database backup failed overnight because the disk was full.",
             "why didn't the nightly archive of the live records finish"),
            ("Shipment 42 to the Oslo warehouse is delayed by customs inspection.",
             "why is the Norway delivery held up at the border"),
            ("The API rate limit for the partner account was raised to 500 requests per minute.",
             "how many calls can the reseller integration make each sixty seconds"),
            ("The office printer on floor three is out of toner.",
             "which machine upstairs has run dry of ink"),
            ("Contract renewal with Acme Logistics is due on the first of September.",
             "when must we extend the agreement with the freight company"),
            ("The load balancer certificate expires in nine days.",
             "when will the TLS credential on the traffic distributor run out"),
            ("Customer 5521 requested that all their personal data be deleted.",
             "which client asked to be forgotten under privacy rules"),
        ],
    },
    "held out": {
        "doc": [
            ("The museum is closed on Mondays for cleaning and repairs.",
             "which day can visitors not enter the gallery"),
            ("Aunt Helga keeps her recipe for plum cake in a blue tin.",
             "where is the fruit dessert formula of our relative stored"),
            ("The village well was poisoned in 1843, so everyone moved uphill.",
             "why did the townsfolk relocate to higher ground long ago"),
            ("Our solar panels produced less electricity than expected in November.",
             "how did the rooftop energy output compare with forecasts late in autumn"),
            ("The violin teacher charges forty euros for an hour of tuition.",
             "how much does the string instrument instructor cost per lesson"),
            ("The old bridge over the river will be demolished next spring.",
             "what is going to happen to the ancient crossing above the stream"),
            ("Lena stopped drinking coffee because it kept her awake at night.",
             "why did she give up her morning caffeine habit"),
            ("The garden hose burst and flooded the cellar last weekend.",
             "what caused water in the basement recently"),
        ],
        "chat": [
            ("My passport expires in April, so I need to renew it before the trip.",
             "is my travel document still valid for the journey"),
            ("I've started learning Japanese on Tuesday evenings.",
             "which language course am I taking this year"),
            ("The plumber is coming on Friday to fix the leaking sink.",
             "when will someone repair the dripping basin"),
            ("We are hosting twelve guests for dinner on Saturday.",
             "how many people will eat at ours this weekend"),
            ("I lost my wallet at the football stadium yesterday.",
             "where did I misplace my purse"),
            ("Our baby daughter took her first steps this morning.",
             "when did the infant begin to walk"),
            ("My doctor told me to cut down on salt because of my blood pressure.",
             "what dietary change did the physician recommend"),
            ("We're saving up to buy a sailboat by the end of next year.",
             "what large purchase are we putting money aside for"),
        ],
        "tool": [
            ("Server eu-west-7 was rebooted after a kernel panic at 03:12.",
             "which machine restarted following an operating system crash"),
            ("The marketing budget for Q3 was cut by a third.",
             "how much was the advertising spend reduced this summer"),
            ("Order 88120 was returned because the jacket was the wrong size.",
             "why did the customer send back the coat"),
            ("Employee badge 3317 was deactivated after the staff member resigned.",
             "whose access card was switched off when they quit"),
            ("The nightly ETL job now takes four hours instead of forty minutes.",
             "why is the overnight data pipeline so much slower"),
            ("Flight BA117 was diverted to Manchester because of fog.",
             "where did the plane land instead due to poor visibility"),
            ("The warehouse freezer temperature rose to minus two degrees.",
             "did the cold storage unit get too warm"),
            ("Ticket 9902 reports that users cannot reset their passwords.",
             "which support case is about people unable to recover login credentials"),
        ],
    },
}

#: A few facts in other languages (MiniLM is English-only: reported, not claimed).
OTHER: dict[str, list[F]] = {
    "ru": [
        ("Ключ от гаража лежит в синей коробке на кухне.",
         "где хранится то, чем открывают место для машины"),
        ("Поезд в Казань отправляется в семь утра в пятницу.",
         "когда уезжает состав в Татарстан"),
        ("Наша собака боится грозы и прячется под кроватью.",
         "как ведёт себя пёс при громе"),
        ("Бабушка испекла яблочный пирог к дню рождения.",
         "какой десерт приготовила старушка к празднику"),
    ],
    "zh": [
        ("车库的钥匙放在厨房的蓝色盒子里。", "打开停车的地方用的东西在哪儿"),
        ("去上海的火车星期五早上七点出发。", "开往沪的列车几时走"),
        ("我们的狗害怕打雷，总是躲在床底下。", "雷雨时宠物会怎么做"),
        ("奶奶为生日烤了一个苹果蛋糕。", "老人家为庆祝做了什么甜点"),
    ],
}

_STOP = """\
a an the of to in on at for by with from and or but is are was were be been
being do does did didn't i i've me my we we're our ours us you your he she her his it its
they them their this that these those what which who whom whose where when why how can
can't could will would shall should may might must not no so than then there here into
onto about as any all each every some own up out off over under again just am has have
had get got is it's per
в во на к от под при для с и где когда как какой какая что чем то себя
"""
STOP = set(_STOP.split())
_WORD = re.compile(r"[\w']+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff]+")


def content(text: str) -> set[str]:
    """Content words (lowercased, function words dropped) and CJK bigrams."""
    out = {w for w in _WORD.findall(text.lower()) if w not in STOP and not _CJK.search(w)}
    for run in _CJK.findall(text):
        out |= {run[i:i + 2] for i in range(len(run) - 1)}
    return out


def shared(fact: str, question: str) -> set[str]:
    """Question words sharing a word (or its first 5 letters) with the fact."""
    a, b = content(fact), content(question)
    return {w for w in b for v in a if w == v or (len(w) >= 5 and len(v) >= 5
                                                    and w[:5] == v[:5])}


class CachedRanker:
    """A ranker remembering its vectors by text (the second backend embeds nothing new)."""

    def __init__(self, inner: MiniLMRanker) -> None:
        self.inner, self.name, self.seen = inner, inner.name, {}
        self.spaceless_scripts = inner.spaceless_scripts  # as the library would use it

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        todo = [t for t in dict.fromkeys(texts) if t not in self.seen]
        if todo:
            self.seen.update(zip(todo, self.inner.embed(todo)))
        return [self.seen[t] for t in texts]


@dataclass
class Fact:
    text: str
    question: str
    item_id: str = ""
    start: int = 0


def filler(part: str) -> list[str]:
    """Filler sentences: Python reference prose, or for ``ru`` / ``zh`` that
    language's held-out prose of ``benchmarks/retrieval.py``."""
    if part in OTHER:
        from retrieval import material

        return material(part, "held out")
    import pydoc_data.topics as topics

    names = sorted(topics.topics)
    chosen = names[0::2] if part == "tuning" else names[1::2]
    text = " ".join(" ".join(topics.topics[n].split()) for n in chosen)
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if 20 <= len(s) <= 400]


def plant(mem: OpticalMemory, kind: str, part: str, facts: list[F], user: str,
          rng: random.Random) -> list[Fact]:
    """Store one haystack of ``kind`` holding ``facts`` under ``user``."""
    out = [Fact(f, q) for f, q in facts]
    if kind == "doc":
        sents = filler(part)
        body: list[str] = []
        while sum(len(s) + 1 for s in body) < DOC_CHARS.get(part, DOC_CHARS["en"]):
            body.append(rng.choice(sents))
        for fact in out:
            body.insert(rng.randrange(len(body) + 1), fact.text)
        text = ("" if part == "zh" else " ").join(body)
        item = mem.add_document(text, title="notes", user_id=user).item_ids[0]
        for fact in out:
            fact.item_id, fact.start = item, text.index(fact.text)
        return out
    seed = rng.randrange(10**6)
    messages = [dict(m) for m in generate_conversation(tokens=CHAT_TOKENS, seed=seed).messages]
    tools = [i for i, m in enumerate(messages) if m["role"] == "tool"][:-2]
    where: list[int] = []
    for n, fact in enumerate(out):
        if kind == "chat":
            at = rng.randrange(len(messages) - 6)
            while messages[at]["role"] == "tool" or messages[at].get("tool_calls"):
                at += 1  # never between a tool call and its result
            messages.insert(at, {"role": "user", "content": fact.text})
            where = [w + (w >= at) for w in where] + [at]
        else:
            at = tools.pop(rng.randrange(len(tools)))
            content_ = (json.dumps({"id": 1000 + n, "status": "ok", "note": fact.text})
                        if n % 2 == 0 else f"| field | value |\n|---|---|\n| note | {fact.text} |")
            messages[at] = dict(messages[at], content=content_)
            where.append(at)
    ids = mem.add(messages, user_id=user).item_ids
    mem.compact(user_id=user, force=True)
    for fact, at in zip(out, where):
        fact.item_id = ids[at]
        fact.start = str(messages[at]["content"]).index(fact.text)
    return out


def measure(store: str, ranker: CachedRanker, group: str, kind: str, facts: list[F],
            part: str, seed: int) -> dict:
    user = f"bench-paraphrase-{uuid.uuid4().hex[:8]}"
    scope = Scope(user)
    rng = random.Random(f"{seed}-{group}-{kind}")
    with OpticalMemory(store, keep_last=4, ranker=ranker) as mem:
        t0 = time.perf_counter()
        planted = plant(mem, kind, part, facts, user, rng)
        write_s = time.perf_counter() - t0
        passages = len(mem.store.passage_vectors(scope, ranker.name)[0])
        rows: dict[str, list[tuple[bool, bool, bool]]] = {"keyword": [], "semantic": []}
        ms: dict[str, list[float]] = {"keyword": [], "semantic": []}
        misses = []
        for fact in planted:
            end = fact.start + len(fact.text)
            holding = {p.id for p in mem.store.pages_for_item(fact.item_id, scope)
                       if any(s.item_id == fact.item_id and s.start < end and fact.start < s.end
                              for s in p.spans)}
            assert holding, f"fact not on a page: {fact.text}"
            for mode in ("keyword", "semantic"):
                t = time.perf_counter()
                hits = mem.retrieve(fact.question, k=3, user_id=user,
                                    semantic=mode == "semantic")
                ms[mode].append(1000 * (time.perf_counter() - t))
                row = (any(h.page_id in holding for h in hits),
                       bool(hits) and hits[0].page_id in holding,
                       any(h.text is not None and fact.text in h.text for h in hits))
                rows[mode].append(row)
                if mode == "semantic" and not row[0]:
                    misses.append(fact.question)
        pages = mem.stats(user_id=user).pages
        mem.delete(user_id=user)
    return {"group": group, "kind": kind, "facts": len(planted), "pages": pages,
            "passages": passages, "rows": rows, "write_s": write_s, "misses": misses,
            "ms": {m: statistics.median(v) for m, v in ms.items()}}


class RandomQuery:
    """A ranker whose query vector is random: times the search, not the model."""

    name = "scale-test"

    def __init__(self, dim: int) -> None:
        self.rng = np.random.default_rng(0)
        self.dim = dim

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        return list(self.rng.standard_normal((len(texts), self.dim)))


def scale(store_url: str, sizes: list[int], dim: int = 384) -> list[tuple[int, float, float]]:
    """(passages, median ms of SemanticIndex.nearest, MB of vectors) per size."""
    out = []
    rng = np.random.default_rng(1)
    with open_store(store_url) as store:
        for n in sizes:
            scope = Scope(f"bench-scale-{uuid.uuid4().hex[:8]}")
            for i in range(0, n, 2000):
                store.add_items([NewItem(kind="text", text=f"note {j} about item {j % 97}",
                                         text_tokens=6) for j in range(i, min(n, i + 2000))],
                                scope=scope)
            index = SemanticIndex(store, RandomQuery(dim))
            while refs := store.passages_without_vectors(scope, index.model, limit=5000):
                vecs = rng.standard_normal((len(refs), dim)).astype("<f4")
                vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
                store.put_passage_vectors(index.model, refs, [v.tobytes() for v in vecs])
            times = []
            for _ in range(5):
                t = time.perf_counter()
                index.nearest("query", scope, ("item",), 50)
                times.append(1000 * (time.perf_counter() - t))
            out.append((n, statistics.median(times), n * dim * 4 / 1e6))
            store.delete(scope)
            print(f"scale {store_url[:10]} {n}: {statistics.median(times):.0f} ms", flush=True)
    return out


def _pct(values: list[bool]) -> str:
    return f"{100 * sum(values) / len(values):.1f}" if values else "-"


def report(results: list[dict], scales: dict[str, list], args: argparse.Namespace) -> str:
    out = [
        "# Paraphrase recall: semantic search",
        "",
        f"`benchmarks/paraphrase.py` (seed {args.seed}): 48 English facts, each asked by a "
        "question sharing no content word with it (checked by the script: no question word "
        "outside a list of function words equals a fact word or shares its first 5 letters). "
        "Per part, 8 facts in each of three haystacks, one scope each: **doc** (5-7 pages of "
        "Python reference prose, one document), **chat** (the package's synthetic agent "
        "session, ~20k tokens, facts as user turns) and **tool** (the same kind of session, "
        "facts inside tool results: a JSON field or a markdown table cell); chats paged with "
        "`compact(force=True)`, keep_last=4. `retrieve(k=3)`: **kw** = `semantic=False` "
        "(BM25 alone), **sem** = `semantic=True` (all-MiniLM-L6-v2 passage vectors, exact "
        "cosine search in numpy, fused with BM25 by idf-weighted reciprocal rank fusion). "
        "top-3 / top-1: a hit among the first 3 / the first is on a page holding the fact; "
        "text: a top-3 `Hit.text` holds the whole fact. write s: add + paging + embedding "
        "the haystack's passages (MiniLM on 1 torch thread of a 2-core machine shared with "
        "other jobs: times are pessimistic). "
        f"Python {platform.python_version()}, {platform.machine()}.",
        "",
        "**Held out**: its facts and questions, and its filler (the other half of the "
        "`pydoc_data` topics, other conversation seeds), were not looked at while choosing "
        "the fusion (RRF constant 30, 50 candidates per list, keyword rank weighted by the "
        "square of the share of the query's idf the passage holds, sentence pieces of at most "
        "40 words); those were chosen on the tuning part.",
        "",
        "**ru / zh**: 4 facts each, planted in a document of that language's prose (the "
        "held-out material of `benchmarks/retrieval.py`, ~4 pages), asked in the same "
        "language. all-MiniLM-L6-v2 was trained on English: these rows show how it behaves, "
        "they are not a claim. With 3-4 pages a top-3 page is near chance; top-1 and text "
        "are the telling columns. Chinese questions are answered by keywords alone "
        "(`MiniLMRanker.spaceless_scripts = False`), so their sem columns are kw's.",
        "",
        "| backend | part | haystack | facts | pages | passages | top-3 kw | top-3 sem | "
        "top-1 kw | top-1 sem | text kw | text sem | ms kw | ms sem | write s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        kw, sem = r["rows"]["keyword"], r["rows"]["semantic"]
        out.append(
            f"| {r['backend']} | {r['group']} | {r['kind']} | {r['facts']} | {r['pages']} | "
            f"{r['passages']} | {_pct([x[0] for x in kw])} | {_pct([x[0] for x in sem])} | "
            f"{_pct([x[1] for x in kw])} | {_pct([x[1] for x in sem])} | "
            f"{_pct([x[2] for x in kw])} | {_pct([x[2] for x in sem])} | "
            f"{r['ms']['keyword']:.0f} | {r['ms']['semantic']:.0f} | {r['write_s']:.0f} |")
    out += ["", "Per part, all haystacks together (target, semantic on: top-3 >= 90%):", "",
            "| backend | part | questions | top-3 kw | top-3 sem | top-1 sem | text sem |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for backend in dict.fromkeys(r["backend"] for r in results):
        for group in dict.fromkeys(r["group"] for r in results):
            mine = [r for r in results if r["backend"] == backend and r["group"] == group]
            kw = [x for r in mine for x in r["rows"]["keyword"]]
            sem = [x for r in mine for x in r["rows"]["semantic"]]
            out.append(f"| {backend} | {group} | {len(sem)} | {_pct([x[0] for x in kw])} | "
                       f"{_pct([x[0] for x in sem])} | {_pct([x[1] for x in sem])} | "
                       f"{_pct([x[2] for x in sem])} |")
    misses = [(r["backend"], r["group"], q) for r in results for q in r["misses"]]
    if misses:
        out += ["", "Questions whose fact was not in the semantic top 3:", ""]
        out += [f"- {b}, {g}: \"{q}\"" for b, g, q in misses]
    if scales:
        out += ["", "Exact vector search time per query (reading the scope's 384-d float32 "
                "vectors from the store, then one numpy product; median of 5; no model):", "",
                "| backend | passages in scope | vectors MB | ms per query |",
                "|---|---:|---:|---:|"]
        for backend, rows in scales.items():
            out += [f"| {backend} | {n:,} | {mb:.0f} | {ms:.0f} |" for n, ms, mb in rows]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("OPTICAL_MEMORY_TEST_PG_URL"))
    ap.add_argument("--parts", default="tuning,held out,ru,zh")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--scale", default="", help="passage counts to time vector search at")
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for MiniLM")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "paraphrase.md")
    args = ap.parse_args(argv)
    for group in (*FACTS.values(), OTHER):
        for facts in group.values():
            for fact, question in facts:
                assert not shared(fact, question), (question, shared(fact, question))
    import torch

    torch.set_num_threads(args.threads)  # 2 threads spin badly on a shared, loaded machine
    ranker = CachedRanker(MiniLMRanker())
    results = []
    scales: dict[str, list] = {}
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", str(Path(tmp) / "paraphrase.db"))]
        if args.pg:
            backends.append(("postgres", args.pg))
        for group in args.parts.split(","):
            jobs = ([(kind, FACTS[group][kind], group) for kind in args.kinds.split(",")]
                    if group in FACTS else [("doc", OTHER[group], group)])
            for kind, facts, part in jobs:
                for name, store in backends:
                    r = measure(store, ranker, group, kind, facts, part, args.seed)
                    r["backend"] = name
                    results.append(r)
                    print(name, group, kind, {m: _pct([x[0] for x in v])
                                              for m, v in r["rows"].items()},
                          f"{r['write_s']:.0f}s", flush=True)
        if args.scale:
            sizes = [int(x) for x in args.scale.split(",")]
            for name, store in backends:
                scales[name] = scale(store, sizes)
    text = report(results, scales, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)  # benchmark script output (not library code)
    return text


if __name__ == "__main__":
    main()
