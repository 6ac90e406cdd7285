"""Matched-budget baselines: truncation, the TF-IDF extractive compressor, the
model summary (stub endpoint), needle histories and the matched runner."""
from __future__ import annotations

import pytest
from stub_openai import StubOpenAI

from optical_memory import InputError
from optical_memory.context import MESSAGE_OVERHEAD
from optical_memory.niah import AnswerEndpoint
from optical_memory.niah.baselines import (
    build_history,
    extractive,
    message_cost,
    message_text,
    sentences,
    summarize,
    tfidf_scores,
    truncate,
)
from optical_memory.tokens import get_counter

C = get_counter("o200k_base")


def _msgs(n: int) -> list[dict]:
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": f"Message number {i} says {'word ' * (i % 7 + 1)}end."} for i in range(n)]


def test_truncate_keeps_exactly_the_newest_messages_that_fit():
    msgs = _msgs(40)
    costs = [message_cost(m, C) for m in msgs]
    for budget in (1, 30, 100, 257, 10_000):
        ctx = truncate(msgs, budget, C)
        k = ctx.messages
        assert ctx.tokens == sum(costs[len(msgs) - k:]) <= budget
        if k < len(msgs):  # maximal: the next older message does not fit
            assert ctx.tokens + costs[len(msgs) - k - 1] > budget
        assert ctx.text == "\n".join(m["content"] for m in msgs[len(msgs) - k:])
        assert ctx.carried_tokens == ctx.tokens - MESSAGE_OVERHEAD * k


def test_truncate_never_keeps_a_tool_result_without_its_call():
    call = {"id": "c1", "function": {"name": "search", "arguments": '{"q": "x"}'}}
    msgs = [{"role": "user", "content": "start " * 50},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "result"},
            {"role": "assistant", "content": "done"}]
    assert message_text(msgs[1]) == '→ search({"q": "x"}) [c1]'
    tail = message_cost(msgs[2], C) + message_cost(msgs[3], C)
    ctx = truncate(msgs, tail + message_cost(msgs[1], C) - 1, C)  # the call does not fit
    assert ctx.messages == 1 and ctx.text == "done"
    ctx = truncate(msgs, tail + message_cost(msgs[1], C), C)
    assert ctx.messages == 3


def test_sentences_split_at_ends_not_inside_numbers():
    assert sentences('Pi is 3.14 today. Next! "Quoted." Then\nline two? end') == [
        "Pi is 3.14 today.", "Next!", '"Quoted."', "Then", "line two?", "end"]


def test_tfidf_scores_rank_rare_words_over_common_ones():
    docs = ["the cat sat. the zebra quokka kumquat.", "the cat ran.", "the cat sat."]
    units = [(0, "the cat sat."), (0, "the zebra quokka kumquat."), (1, "the cat ran.")]
    s = tfidf_scores(docs, units)
    assert s[1] > s[2] > s[0]
    assert tfidf_scores(["a a", "a"], [(0, "a a")]) == [0.0]  # in every doc: idf 0


def test_extractive_keeps_the_tail_and_the_best_sentences_in_order():
    common = "The team met and talked about the plan for the week."
    msgs = [{"role": "user", "content": f"{common} {common}"} for _ in range(30)]
    msgs[3] = {"role": "user", "content": f"{common} Zanzibar quokka ledger 7312. {common}"}
    msgs[20] = {"role": "user", "content": f"Kumquat flamingo vault 9921. {common}"}
    msgs += [{"role": "assistant", "content": f"recent {i}"} for i in range(3)]
    budget = 3 * message_cost(msgs[-1], C) + 40
    ctx = extractive(msgs, budget, C, keep_last=3)
    assert ctx.tokens <= budget
    lines = ctx.text.split("\n")
    assert lines[-3:] == ["recent 0", "recent 1", "recent 2"]  # the last turns, verbatim
    # the two rare sentences, in history order; the repeated one at most once
    extract = lines[:-3]
    assert extract.index("Zanzibar quokka ledger 7312.") < extract.index(
        "Kumquat flamingo vault 9921.")
    assert ctx.text.count(common) <= 1 and len(extract) <= 3
    # a budget below the tail keeps what fits of it and no extract
    small = extractive(msgs, message_cost(msgs[-1], C), C, keep_last=3)
    assert small.text == "recent 2" and small.messages == 1


def test_extractive_fills_the_budget_and_never_overruns():
    hist = build_history("chat", 6000, C, seed=3)
    for budget in (300, 1000, 2500):
        ctx = extractive(hist.messages, budget, C)
        assert budget - 60 <= ctx.tokens <= budget


def test_build_history_plants_unique_needles_at_spread_ages():
    for kind in ("chat", "docs"):
        h = build_history(kind, 12_000, C, seed=2)
        costs = [message_cost(m, C) for m in h.messages]
        assert h.tokens == sum(costs)
        ages = [n.age_tokens for n in h.needles]
        assert ages == sorted(ages, reverse=True) and len(set(ages)) == len(ages) == 10
        whole = "\n".join(message_text(m) for m in h.messages)
        for n in h.needles:
            assert whole.count(n.value) == 1 and n.text in h.messages[n.index]["content"]
            assert n.age_tokens == sum(costs[n.index + 1:])
            assert n.key in n.question
            if kind == "chat":
                assert h.messages[n.index]["role"] == "user"
        assert ages[0] > 0.8 * h.tokens and ages[-1] < 0.05 * h.tokens
    with pytest.raises(InputError):
        build_history("novel", 12_000, C)


def test_summarize_through_a_stub_endpoint_stays_within_budget():
    hist = build_history("chat", 6000, C, seed=4)
    with StubOpenAI(reply_text="summary " * 5000) as stub:  # a model that overruns
        ep = AnswerEndpoint(stub.base_url, "summ")
        ctx = summarize(hist.messages, 500, C, ep, chunk_tokens=2500)
        assert ctx.tokens <= 500 and ctx.text.startswith("summary")
        assert len(stub.requests) >= 2  # one per chunk
        body = stub.requests[0]["body"]
        assert body["model"] == "summ" and body["max_tokens"] == (500 - 4) // len(stub.requests)
        sent = "".join(r["body"]["messages"][1]["content"] for r in stub.requests)
        assert hist.needles[0].value in sent and hist.needles[-1].value in sent
    with StubOpenAI(status=500) as stub, pytest.raises(Exception, match="500"):
        summarize(hist.messages, 500, C, AnswerEndpoint(stub.base_url, "summ"))


def test_matched_run_small():
    from optical_memory.niah.matched import (
        MatchedConfig,
        query_table,
        run_matched,
        summary_table,
    )

    cfg = MatchedConfig(kinds=("chat",), history_tokens=8000, budgets=(600, 3000),
                        targets=("deepseek-ocr:base",),
                        methods=("truncation", "optical-tiered", "optical-query"))
    rows, facts = run_matched(cfg)
    assert len(rows) == 2 * 3 * 10 and facts["reads"] >= 1
    for r in rows:
        assert r["context_tokens"] <= r["budget"]
    for b in cfg.budgets:  # truncation holds exactly the youngest needles, those it fits
        tr = [r for r in rows if r["method"] == "truncation" and r["budget"] == b]
        held = [r["age_tokens"] for r in tr if r["recalled"]]
        lost = [r["age_tokens"] for r in tr if not r["recalled"]]
        assert lost and (not held or max(held) < min(lost))
        assert all(a < r["context_tokens"] for a, r in zip(held, tr))
    by = {(r["method"], r["budget"]): 0 for r in rows}
    for r in rows:
        by[(r["method"], r["budget"])] += r["recalled"]
    assert by[("optical-tiered", 3000)] > by[("truncation", 3000)]
    assert by[("optical-query", 600)] >= by[("optical-tiered", 600)]
    assert "optical-query" in summary_table(rows, "deepseek-ocr:base")
    # where the tiered context has each needle: a recalled one is there
    for r in rows:
        if r["method"] == "optical-tiered" and r["recalled"]:
            assert r["in_context"] in ("text", "page:base", "page:small", "page:tiny")
    table = query_table(rows, "deepseek-ocr:base")
    assert table.count("\n") >= 2 and "| needles |" in table
    with pytest.raises(InputError):
        MatchedConfig(methods=("summary",))


def _sent(body: dict) -> tuple[str, list[str]]:
    """The text a chat request carries (every string content and text part)
    and its image parts' URLs."""
    texts, images = [], []
    for m in body["messages"]:
        content = m.get("content")
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content or ():
            if part.get("type") == "text":
                texts.append(part["text"])
            else:
                assert part["type"] == "image_url"  # no other block reaches the endpoint
                images.append(part["image_url"]["url"])
    return "\n".join(texts), images


def _text_reader(seen: list):
    """A stand-in model that reads text only: the value planted for the asked
    key when the text it was sent holds it, else "unknown"."""
    import re

    def respond(body: dict) -> str:
        text, images = _sent(body)
        key = re.search(r"magic numbers for (\S+) mentioned", body["messages"][-1]["content"]
                        if body["messages"][-1]["role"] == "user"
                        else next(m["content"] for m in reversed(body["messages"])
                                  if m["role"] == "user"))
        assert key is not None
        seen.append({"key": key.group(1), "images": images, "text": text})
        hit = re.search(rf"magic numbers for {re.escape(key.group(1))} is: (\d+)", text)
        return f"The number is {hit.group(1)}." if hit else "unknown"
    return respond


def test_openai_messages_turn_image_blocks_into_image_url_parts():
    from optical_memory.niah.answer import openai_messages

    msgs = [{"role": "user", "content": [{"type": "text", "text": "pages"},
                                         {"type": "image", "base64": "QUJD",
                                          "mime_type": "image/png"}]},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}]
    out = openai_messages(msgs)
    assert out[0]["content"] == [{"type": "text", "text": "pages"},
                                 {"type": "image_url",
                                  "image_url": {"url": "data:image/png;base64,QUJD"}}]
    assert out[1] == msgs[1] and msgs[0]["content"][1]["type"] == "image"  # input untouched


def test_matched_answer_stage_sends_each_context_and_scores_the_replies():
    import base64
    import io

    from PIL import Image

    from optical_memory.niah.matched import MatchedConfig, answer_table, run_matched

    seen: list = []
    with StubOpenAI(responder=_text_reader(seen)) as stub:
        cfg = MatchedConfig(kinds=("chat",), history_tokens=8000, budgets=(600, 3000),
                            targets=("deepseek-ocr:base",), answer_sample=4,
                            methods=("truncation", "optical-tiered", "optical-recall"),
                            answer=AnswerEndpoint(stub.base_url, "reader-stub"))
        rows, facts = run_matched(cfg)
        assert len(stub.requests) == facts["answers"] == len(seen) > 0
        assert all(r["path"] == "/v1/chat/completions" for r in stub.requests)
    asked = [r for r in rows if "answer_score" in r]
    keys = {r["key"] for r in asked}
    assert len(keys) == 4 and len(asked) == 4 * 2 * 3  # the same 4 needles in every cell
    assert all(r["answer_model"] == "reader-stub" for r in asked)
    for r in asked:
        if r["method"] == "truncation":  # text only: answered exactly when held
            assert r["answer_score"] == float(r["recalled"])
        elif r["method"] == "optical-tiered":  # the stub reads no pages: only the turns' text
            assert r["answer_score"] == float(r["in_context"] == "text")
            pages = sum(r["tiers"].values())
            assert any(s["key"] == r["key"] and len(s["images"]) == pages for s in seen)
        else:  # the recall tool's result is text after the question
            if r["how"] in ("text", "recall"):
                assert r["answer_score"] == 1.0
            if r["how"] is None:
                assert r["answer_score"] == 0.0
    # pages went out as PNG data URLs of the memory's page size
    url = next(u for s in seen for u in s["images"])
    assert url.startswith("data:image/png;base64,")
    png = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert png.format == "PNG" and png.size == (1024, 1024)
    # the old needles are only on pages: the text-only stub cannot answer them there
    tiered = [r for r in asked if r["method"] == "optical-tiered"]
    assert any(r["recalled"] and r["answer_score"] == 0.0 for r in tiered)
    table = answer_table(rows, "deepseek-ocr:base")
    assert "| optical-recall | 3k | 4 |" in table and table.count("\n") == 1 + 3 * 2
    assert answer_table([r for r in rows if "answer_score" not in r], "deepseek-ocr:base") == ""
    with pytest.raises(InputError):
        MatchedConfig(answer_sample=0)


def test_matched_summary_method_through_the_stub():
    import re

    from optical_memory.niah.matched import MatchedConfig, run_matched, summary_table

    def summarise(body: dict) -> str:  # a summariser that keeps the numbers it was sent
        return "Numbers: " + " ".join(re.findall(r"\b\d{7}\b", body["messages"][1]["content"]))

    with StubOpenAI(responder=summarise) as stub:
        cfg = MatchedConfig(kinds=("chat",), history_tokens=6000, budgets=(300,),
                            targets=("deepseek-ocr:base",), methods=("summary", "truncation"),
                            summary=AnswerEndpoint(stub.base_url, "summ", max_tokens=None))
        rows, _ = run_matched(cfg)
    summ = [r for r in rows if r["method"] == "summary"]
    assert len(summ) == 10 and all(r["recalled"] for r in summ)
    assert all(r["context_tokens"] <= 300 for r in summ)
    assert sum(r["recalled"] for r in rows if r["method"] == "truncation") < 10
    assert "| summary | 0k |" in summary_table(rows, "deepseek-ocr:base")


def test_seed_aggregation_shows_the_mean_and_the_seeds_range():
    from optical_memory.niah.matched import MatchedConfig, run_matched, seed_pct, summary_table

    cfg = MatchedConfig(kinds=("chat",), history_tokens=40_000, budgets=(2000, 8000),
                        targets=("deepseek-ocr:base",), seeds=(1, 2),
                        methods=("truncation", "extractive"))
    rows, _ = run_matched(cfg)
    assert len(rows) == 2 * 2 * 2 * 10
    table = summary_table(rows, "deepseek-ocr:base")
    for m in cfg.methods:
        for b in cfg.budgets:
            sel = [r for r in rows if r["method"] == m and r["budget"] == b]
            per = [sum(r["recalled"] for r in sel if r["seed"] == s) * 10 for s in (1, 2)]
            cell = f"{sum(per) / 2:.0f}% ({min(per)}–{max(per)})"
            assert seed_pct(sel) == cell
            line = next(x for x in table.splitlines() if x.startswith(f"| {m} | {b // 1000}k |"))
            assert line.split(" | ")[4] == cell  # recall, chat
    one = [r for r in rows if r["seed"] == 1]
    assert "(" not in summary_table(one, "deepseek-ocr:base")
    # synthetic rows: unequal per-seed results aggregate as mean and range
    fake = [{"seed": s, "recalled": v} for s, vs in ((1, [1, 1]), (2, [1, 0]), (3, [0, 0]))
            for v in vs]
    assert seed_pct(fake) == "50% (0–100)"
