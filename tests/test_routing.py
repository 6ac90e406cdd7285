"""Text or pixels per span: the detector, the read-back table, the rule and
the exact-value block in the budgeted context."""
from __future__ import annotations

import json
import random
import uuid
from dataclasses import replace

import pytest

from optical_memory import OpticalMemory
from optical_memory.age import AgePolicy
from optical_memory.context import routing
from optical_memory.context.budget import MESSAGE_OVERHEAD, ContextPage, build_context
from optical_memory.context.routing import (
    EXACT_NOTE,
    Candidate,
    ExactBlock,
    ExactSpan,
    ExactSpanPolicy,
    ReadbackTable,
    choose_lines,
    find_spans,
    locator,
)
from optical_memory.errors import ConfigError
from optical_memory.tokens import get_counter

COUNT = get_counter("o200k_base").count


def kinds(text: str) -> list[tuple[str, str]]:
    return [(s.kind, s.text) for s in find_spans(text)]


# ---------------------------------------------------------------- detector


def test_detector_finds_each_kind():
    text = ("order 4411-2293-001 for 3f2a9c1e-1b2d-4c3e-9f00-123456789abc, commit 9fceb02a1d4e, "
            "key sk-AbCdEf1234567890XyZw, amount 1,284,993.50, call +1 415 555 0199, "
            "pattern ^[\\w.+-]+@\\w+\\.\\w{2,}$ done")
    assert kinds(text) == [
        ("digits", "4411-2293-001"), ("uuid", "3f2a9c1e-1b2d-4c3e-9f00-123456789abc"),
        ("hex", "9fceb02a1d4e"), ("key", "sk-AbCdEf1234567890XyZw"),
        ("digits", "1,284,993.50"), ("digits", "+1 415 555 0199"),
        ("symbols", "^[\\w.+-]+@\\w+\\.\\w{2,}$")]
    for s in find_spans(text):
        assert text[s.start:s.end] == s.text


@pytest.mark.parametrize("text", [
    "The quick brown fox jumps over the lazy dog in 2023, version 3.11.7, page 123456.",
    "Die Größe der Straße beträgt ungefähr zwölf Meter; café crème, naïve façade.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "我们明天早上九点在会议室讨论这个问题。",
    "def area(r: float) -> float:\n    return 3.14159 * r ** 2  # the circle's area\n",
    "for k, v in sorted(d.items()):\n    print(f'{k}: {v}')\n",
    "camelCaseIdentifierName9 and Helloworld_FooBar2000 are names, not keys",
    "met on 2024-05-01 at 12:30, deadbeef, 123456, abc123",
])
def test_detector_ignores_prose_code_and_short_numbers(text):
    assert find_spans(text) == []


def test_detector_finds_values_inside_other_scripts():
    assert kinds("订单号1234567已发货") == [("digits", "1234567")]
    assert kinds("Bestellnummer: 99887766, Größe L") == [("digits", "99887766")]
    assert kinds("ключ sk-Zx81Qw02Er93Ty47Ui ок") == [("key", "sk-Zx81Qw02Er93Ty47Ui")]


def test_detector_finds_random_keys_and_uuids():
    rng = random.Random(0)
    b62 = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    keys = ["sk-" + "".join(rng.choice(b62) for _ in range(32)) for _ in range(100)]
    assert sum(bool(find_spans(f"key {k} here")) for k in keys) >= 95
    uuids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(50)]
    assert all(kinds(f"id {u}.") == [("uuid", u)] for u in uuids)


def test_locator_names_the_speaker_and_the_words_before():
    text = '{"order_number": "5979-1907-483", "customer_id": "78633074-b797-0386-fee2-947631162427"}'
    spans = find_spans(text)
    assert locator(text, spans[1], "tool", after=spans[0].end) == "tool: …customer_id"
    assert locator("5979-1907-483", find_spans("5979-1907-483")[0], "user") == "user"


# ---------------------------------------------------------------- table


def test_shipped_table_has_every_kind_with_provenance():
    table = ReadbackTable.load()
    for kind in routing.SPAN_KINDS:
        rb = table.readback(kind, 11.0)
        assert rb is not None and 0.0 <= rb <= 1.0
    assert "benchmarks/routing.py --write-table" in table.meta["generated_by"]
    assert table.meta["decoder"] == "native"


def test_table_interpolates_and_clamps(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"meta": {}, "table": {"uuid": [
        {"glyph_px": 11.0, "exact": 0.8}, {"glyph_px": 5.0, "exact": 0.2}]}}))
    t = ReadbackTable.load(path)
    assert t.readback("uuid", 8.0) == pytest.approx(0.5)
    assert t.readback("uuid", 20.0) == 0.8 and t.readback("uuid", 1.0) == 0.2
    assert t.readback("hex", 8.0) is None
    path.write_text("{broken")
    with pytest.raises(ConfigError):
        ReadbackTable.load(path)


# ---------------------------------------------------------------- the rule


def cand(readback: float, tokens: int, name: str = "v") -> Candidate:
    return Candidate("p", ExactSpan("uuid", 0, 1, name), name, readback, tokens)


def test_choose_lines_threshold_cap_and_modes():
    pool = [cand(0.1, 20, "a"), cand(0.5, 20, "b"), cand(0.95, 5, "c"), cand(0.0, 30, "d")]
    frame = MESSAGE_OVERHEAD + COUNT(EXACT_NOTE)
    args = dict(threshold=0.9, slack=10_000, pixel_rate=0.0, count=COUNT, overhead=MESSAGE_OVERHEAD)
    assert choose_lines(pool, mode="off", cap_tokens=10_000, **args) == ()
    got = choose_lines(pool, mode="always", cap_tokens=10_000, **args)
    assert {c.line for c in got} == {"a", "b", "d"}  # c reads back above the threshold
    got = choose_lines(pool, mode="always", cap_tokens=frame + 45, **args)
    assert [c.line for c in got] == ["a", "b"]  # best gain per token first, then the cap
    with pytest.raises(ConfigError):
        choose_lines(pool, mode="sometimes", cap_tokens=100, **args)


def test_auto_copies_past_the_slack_only_when_it_beats_the_pixels():
    pool = [cand(0.0, 10, "a"), cand(0.5, 20, "b")]  # gains per token 0.1 and 0.025
    frame = MESSAGE_OVERHEAD + COUNT(EXACT_NOTE)
    args = dict(threshold=0.9, cap_tokens=10_000, count=COUNT, overhead=MESSAGE_OVERHEAD)
    # no slack: only the copy adding more facts per token than the pixels (0.05)
    assert [c.line for c in choose_lines(pool, mode="auto", slack=0, pixel_rate=0.05,
                                         **args)] == ["a"]
    # room the pages leave unused: both
    assert len(choose_lines(pool, mode="auto", slack=frame + 30, pixel_rate=0.05, **args)) == 2
    assert len(choose_lines(pool, mode="always", slack=0, pixel_rate=0.05, **args)) == 2


def test_policy_checks_its_values():
    assert ExactSpanPolicy.of("off").mode == "off"
    for bad in ("maybe", 3, None):
        with pytest.raises(ConfigError):
            ExactSpanPolicy.of(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ExactSpanPolicy("auto", threshold=1.5)
    with pytest.raises(ConfigError):
        OpticalMemory(":memory:", exact_spans="sometimes")


# ---------------------------------------------------------------- build_context


def page(i: int, tokens: int = 100) -> ContextPage:
    return ContextPage(page_id=f"p{i}", tier="base", width=10, height=10, vision_tokens=tokens,
                       text_tokens=1000, item_ids=(f"i{i}",))


def block(tokens: int) -> ExactBlock:
    return ExactBlock("always", "exact", tokens, (cand(0.0, tokens),))


def build(budget: int, exact: ExactBlock | None = None):
    return build_context(budget_tokens=budget, system="sys", system_tokens=1, turns=[],
                         pages=[page(i) for i in range(5)], count_tokens=lambda s: 10,
                         history_text_tokens=5000, tokenizer="o200k_base", target="t",
                         decoder="d", exact=exact)


def test_block_is_billed_inside_the_budget_and_pages_give_way():
    plain, with_block = build(540), build(540, block(60))
    assert plain.accounting.pages == 5 and with_block.accounting.pages == 4
    acc = with_block.accounting
    assert acc.exact_span_tokens == 60 and acc.exact_spans == 1
    assert acc.context_tokens <= 540
    assert acc.context_tokens == (acc.text_tokens_kept + acc.page_message_tokens
                                  + acc.page_vision_tokens + acc.query_tokens
                                  + acc.exact_span_tokens)
    assert with_block.messages[2] == {"role": "user", "content": "exact"}  # after the pages
    assert acc.to_dict()["exact_span_tokens"] == 60
    assert any("exact values" in r[0] for r in acc.rows())
    # a block that cannot fit beside the must-stay text is left out
    assert build(50, block(60)).accounting.exact_span_tokens == 0


# ---------------------------------------------------------------- end to end


def id_history(n: int = 120, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    msgs = []
    for i in range(n):
        u = str(uuid.UUID(int=rng.getrandbits(128)))
        msgs.append({"role": "user", "content": f"Record {i}: customer {u} paid "
                     f"{rng.randint(1_000_000, 9_999_999)} and said the weather was fine. "
                     + "Nothing else of note happened that afternoon. " * 3})
    return msgs


@pytest.fixture
def mem():
    m = OpticalMemory(":memory:", target="deepseek-ocr:base", keep_last=4,
                      aging=AgePolicy(mode="fade"))
    m.add(id_history())
    m.compact(force=True)
    yield m
    m.close()


@pytest.fixture
def stub_table(monkeypatch):
    """UUIDs never read back, numbers always do (so only UUIDs are copied)."""
    table = ReadbackTable({"uuid": ((5.0, 0.0), (11.0, 0.0)), "digits": ((5.0, 1.0),)}, {})
    monkeypatch.setattr(routing, "_TABLE", [table])
    return table


def test_off_gives_the_context_without_the_block(mem, stub_table):
    off, auto = mem.context(8000, exact_spans="off"), mem.context(8000, exact_spans="auto")
    assert off.exact is None and off.accounting.exact_span_tokens == 0
    assert auto.exact is not None and auto.accounting.exact_spans > 0
    assert auto.accounting.pages == off.accounting.pages  # room was left: no page gives way
    # the same context, plus one message after the pages, billed as text
    assert auto.messages[1] == auto.exact.message()  # right after the page message
    assert auto.messages[:1] + auto.messages[2:] == off.messages
    assert replace(auto.accounting, exact_span_tokens=0, exact_spans=0,
                   context_tokens=auto.accounting.context_tokens
                   - auto.accounting.exact_span_tokens) == off.accounting
    # off is the default; a memory built with exact_spans="auto" gives the block by default
    assert mem.context(8000).messages == off.messages
    eager = OpticalMemory(mem.store, target="deepseek-ocr:base", keep_last=4,
                          aging=AgePolicy(mode="fade"), exact_spans="auto")
    assert eager.context(8000).messages == auto.messages


def test_block_holds_the_poorly_read_values_of_the_pages(mem, stub_table):
    ctx = mem.context(8000, exact_spans="auto")
    assert ctx.exact is not None
    text = ctx.messages[1]["content"]
    assert text.startswith(EXACT_NOTE)
    assert all(c.span.kind == "uuid" for c in ctx.exact.spans)  # digits read back (stub)
    item_texts = [(mem.get_item(i).text or "") for p in ctx.pages for i in p.item_ids]
    for c in ctx.exact.spans:
        assert c.span.text in text and any(c.span.text in t for t in item_texts)
    assert ctx.accounting.exact_span_tokens == COUNT(text) + MESSAGE_OVERHEAD


@pytest.mark.parametrize("budget", [1500, 3000, 6000, 12000])
def test_block_never_exceeds_its_cap_or_the_budget(mem, stub_table, budget):
    for policy in (ExactSpanPolicy("always", cap=0.1), ExactSpanPolicy("always", cap=0.3),
                   ExactSpanPolicy("auto", cap=0.2)):
        acc = mem.context(budget, exact_spans=policy).accounting
        assert acc.exact_span_tokens <= policy.cap * budget
        assert acc.context_tokens <= budget


def test_always_lets_pages_give_way_where_auto_keeps_them(mem, stub_table):
    budget = 1200  # the pages fill it: no slack
    off = mem.context(budget, exact_spans="off").accounting
    always = mem.context(budget, exact_spans=ExactSpanPolicy("always", cap=0.3)).accounting
    auto = mem.context(budget, exact_spans=ExactSpanPolicy("auto", cap=0.3)).accounting
    assert always.exact_span_tokens > 0 and always.pages < off.pages
    assert auto.exact_span_tokens <= always.exact_span_tokens
    assert auto.pages >= always.pages


def test_without_kept_text_nothing_is_copied(stub_table):
    with OpticalMemory(":memory:", target="deepseek-ocr:base", keep_last=4, keep_text=False,
                       aging=AgePolicy(mode="fade")) as m:
        m.add(id_history(40))
        m.compact(force=True)
        assert m.context(8000, exact_spans="always").accounting.exact_span_tokens == 0


def test_cli_context_shows_the_exact_values_row(tmp_path, stub_table):
    from click.testing import CliRunner

    from optical_memory.cli import main

    db = tmp_path / "m.db"
    with OpticalMemory(str(db), target="deepseek-ocr:base", keep_last=4) as m:
        m.add(id_history(60))
        m.compact(force=True)
    run = CliRunner().invoke
    res = run(main, ["context", "--budget", "8000", "--store", str(db), "--json",
                     "--exact-spans", "always"])
    assert res.exit_code == 0, res.output
    acc = json.loads(res.stdout)
    assert acc["exact_spans"] > 0 and 0 < acc["exact_span_tokens"] <= 800
    off = json.loads(run(main, ["context", "--budget", "8000", "--store", str(db),
                                "--json"]).stdout)
    assert off["exact_span_tokens"] == 0
    assert acc["context_tokens"] - acc["exact_span_tokens"] == off["context_tokens"]
    table = run(main, ["context", "--budget", "8000", "--store", str(db),
                       "--exact-spans", "always"]).output
    assert "exact values from pages" in table
    assert run(main, ["context", "--budget", "8000", "--store", str(db),
                      "--exact-spans", "sometimes"]).exit_code == 2
