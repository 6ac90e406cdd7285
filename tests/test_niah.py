"""Needle-in-a-haystack suite: scoring, needles, haystacks, the grid runner
(tesseract, tiny lengths), resume, plots, the answer stage and the CLI.

The expected recall of every tesseract cell is known before it runs and does
not come from the code under test: a needle present on a fresh page reads
back (1.0); a needle left out before rendering (the negative control) cannot
(0.0), and its value is checked to be absent from everything stored.
"""
from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from stub_openai import StubOpenAI

import optical_memory.cli.niah  # noqa: F401  (registers the niah group)
from optical_memory.cli import main
from optical_memory.errors import InputError
from optical_memory.niah import (
    AnswerEndpoint,
    NiahConfig,
    build_haystack,
    forgetting_table,
    grid_table,
    heatmap,
    load_results,
    make_needles,
    mean_score,
    run_grid,
    string_match_all,
    string_match_part,
)
from optical_memory.niah.haystack import banned_text, cut_to_tokens, sentence_end_before
from optical_memory.niah.plots import forgetting_curve, plot_folder
from optical_memory.niah.runner import cell_seed
from optical_memory.tokens import get_counter

GKAMRADT = {"model", "context_length", "depth_percent", "version", "needle", "model_response",
            "score", "test_duration_seconds"}
OURS = {"text_tokens", "vision_tokens", "ratio", "tier", "decoder", "tokenizer", "retrieved",
        "page_ratio", "needle_pages", "references"}


@pytest.fixture(scope="module")
def counter():
    return get_counter("o200k_base")


# -- scoring ----------------------------------------------------------------


def test_string_match_all_and_part_on_hand_cases():
    refs = ["4829317", "ABC-def"]
    assert string_match_all("the values are 4829317 and abc-DEF.", refs) == 1.0
    assert string_match_all("only 4829317 here", refs) == 0.5
    assert string_match_all("nothing", refs) == 0.0
    assert string_match_part("only 4829317 here", refs) == 1.0
    assert string_match_part("nothing", refs) == 0.0
    assert string_match_all("482 9317", "4829317") == 0.0  # a split value is not found
    assert string_match_all("is:\n  4829317.", "4829317") == 1.0  # line breaks collapse
    assert mean_score([1.0, 0.5, 0.0, 0.5]) == 50.0
    assert mean_score([]) == 0.0
    with pytest.raises(InputError):
        string_match_all("x", [])
    with pytest.raises(InputError):
        string_match_all("x", [" "])


# -- needles ------------------------------------------------------------------


@pytest.mark.parametrize("vtype,pattern", [("number", r"^\d{7}$"), ("word", r"^[a-z]+$"),
                                          ("uuid", r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-")])
def test_needle_templates_and_values(vtype, pattern):
    ns = make_needles("single", vtype, seed=3)
    (n,) = ns.targets
    assert re.match(pattern, n.value)
    plural = {"number": "numbers", "word": "words", "uuid": "uuids"}[vtype]
    assert n.text == f"One of the special magic {plural} for {n.key} is: {n.value}."
    assert ns.question == f"What is the special magic {plural} for {n.key} mentioned in the provided text?"
    assert make_needles("single", vtype, seed=3) == ns  # deterministic
    assert make_needles("single", vtype, seed=4) != ns


def test_needle_kinds_shapes_and_disjoint_keys():
    mk = make_needles("multikey", "number", seed=1, distractors=3)
    assert len(mk.targets) == 1 and len(mk.distractors) == 3 and mk.references == (mk.targets[0].value,)
    mv = make_needles("multivalue", "number", seed=1, values=4)
    assert len({n.key for n in mv.targets}) == 1 and len(set(mv.references)) == 4
    mq = make_needles("multiquery", "word", seed=1, queries=4)
    assert len(mq.keys) == 4 and all(k in mq.question for k in mq.keys)
    words = [w for n in (*mk.targets, *mk.distractors) for w in n.key.split("-")]
    assert len(words) == len(set(words)), "keys share a word"
    with pytest.raises(InputError):
        make_needles("sideways")


def test_needle_words_avoid_the_haystack():
    from optical_memory.niah.needles import ADJECTIVES, NOUNS, VALUE_WORDS

    # a haystack using all but two words of each list: only those can be drawn
    text = " ".join((*ADJECTIVES[2:], *NOUNS[2:], *VALUE_WORDS[1:])).upper() + " 1234567"
    for seed in range(6):
        ns = make_needles("single", "word", seed=seed, haystack=text)
        (n,) = ns.targets
        adj, noun = n.key.split("-")
        assert adj in ADJECTIVES[:2] and noun in NOUNS[:2] and n.value == VALUE_WORDS[0]
    with pytest.raises(InputError):  # no two keys may share a word: the third has none left
        make_needles("multiquery", "number", haystack=text, queries=3)


# -- haystacks -----------------------------------------------------------------


def test_text_haystack_length_depth_and_sentence_end(counter):
    ns = make_needles("single", "number", seed=5)
    for depth in (0.0, 37.5, 100.0):
        h = build_haystack("pydoc", 2000, depth, ns, counter)
        assert abs(counter.count(h.text) - 2000) <= 3
        assert h.text[h.target.start:h.target.end] == ns.block
        if depth == 0:
            assert h.target.start == 0
        elif depth == 100:
            assert h.text.endswith(ns.block)
        else:
            assert h.text[h.target.start - 2] in ".!?\"')]" and h.text[h.target.start - 1] == " "
            assert 30 < 100 * h.depth_actual <= 37.5 + 0.5
    assert sentence_end_before("One. Two. Three", 12) == 9
    assert cut_to_tokens("short text.", 50, counter).count("short text.") > 1  # repeated


def test_omitted_needle_is_absent_and_distractors_spread(counter):
    ns = make_needles("multikey", "number", seed=2)
    h = build_haystack("pydoc", 3000, 50.0, ns, counter, omit_targets=True)
    assert ns.references[0] not in h.text
    assert h.target.start == h.target.end
    starts = sorted(p.start for p in h.distractors)
    assert len(starts) == 3 and all(h.text[p.start:p.end] == n.text
                                    for p, n in zip(h.distractors, ns.distractors))
    assert starts[-1] - starts[0] > len(h.text) / 3


def test_chat_haystack_within_length_needle_in_a_user_turn(counter):
    from optical_memory import OpticalMemory

    ns = make_needles("single", "word", seed=1, haystack=banned_text("chat"))
    h = build_haystack("chat", 4000, 60.0, ns, counter, seed=1)
    msg = h.messages[h.target.index]
    assert msg["role"] == "user" and ns.block in msg["content"]
    with OpticalMemory(":memory:", keep_last=0) as mem:
        mem.add(list(h.messages))
        assert 3700 <= mem.stats().text_tokens <= 4000


# -- the grid, with tesseract ----------------------------------------------------


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    """Two present cells (1k, 3k tokens) and one negative control, fresh tier,
    read by the default reader (native: bundled, always there)."""
    out = tmp_path_factory.mktemp("niah")
    present = NiahConfig(lengths=(1000, 3000), depths=(50.0,), tiers=("base",), value_type="word")
    control = NiahConfig(lengths=(2000,), depths=(50.0,), tiers=("base",), value_type="word",
                         omit_needle=True)
    first = run_grid(present, out, workers=2)
    ctl = run_grid(control, out, workers=1)
    return out, present, control, first, ctl


def test_grid_cells_score_as_expected_independently(grid_dir):
    out, _present, _control, first, ctl = grid_dir
    assert first.ran == 2 and first.skipped == 0 and ctl.ran == 1
    expected = {(1000, False): 1.0, (3000, False): 1.0, (2000, True): 0.0}
    cells = load_results(out)
    assert len(cells) == 3
    for c in cells:
        assert set(c) >= GKAMRADT and set(c) >= OURS
        want = expected[(c["context_length"], c["omit_needle"])]
        assert c["score"] == want, c["model_response"]
        assert c["retrieved"] == want
        assert c["decoder"] == "native" and c["tokenizer"] == "o200k_base" and c["tier"] == "base"
        assert c["vision_tokens"] == 273 * c["pages"]  # deepseek-ocr:base per 1024² page
        assert c["ratio"] == pytest.approx(c["text_tokens"] / c["vision_tokens"], abs=1e-3)
        if c["omit_needle"]:  # the needle's budget stays unused
            assert c["context_length"] - 40 <= c["text_tokens"] < c["context_length"]
        else:
            assert abs(c["text_tokens"] - c["context_length"]) <= 3
    ctl_cell = next(c for c in cells if c["omit_needle"])
    assert ctl_cell["retrieved_rank"] == [None]


def test_control_value_is_nowhere_in_the_store(counter):
    """The control's 0 is not an artefact: its value was never stored."""
    ns = make_needles("single", "word", seed=cell_seed(0, 2000, 50.0),
                      haystack=banned_text("pydoc"))
    h = build_haystack("pydoc", 2000, 50.0, ns, counter, omit_targets=True)
    assert ns.references[0].casefold() not in h.text.casefold()


def test_resume_skips_completed_cells(grid_dir):
    out, present, *_ = grid_dir
    files = sorted(out.glob("pydoc_single-word_native_*.json"))
    before = {p: p.stat().st_mtime_ns for p in files}
    again = run_grid(present, out, workers=2)
    assert again.ran == 0 and again.skipped == 2 and len(again.results) == 2
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_resume_refuses_cells_made_with_other_settings(grid_dir):
    """The file name holds neither the target, the tokenizer nor the seed:
    resuming into a folder made with others must not report their numbers."""
    from dataclasses import replace

    from optical_memory.errors import ConfigError

    out, present, *_ = grid_dir
    files = sorted(out.glob("pydoc_single-word_native_*.json"))
    before = {p: p.stat().st_mtime_ns for p in files}
    for change, field in (({"target": "deepseek-ocr:tiny"}, "target"),
                          ({"seed": 7}, "seed"),
                          ({"font_px": 9.0}, None)):  # font size is in the name: no clash
        other = replace(present, **change)
        if field is None:
            assert other.cell_name(1000, 50.0, "base") != present.cell_name(1000, 50.0, "base")
            continue
        with pytest.raises(ConfigError, match=f"other settings: {field}"):
            run_grid(other, out, workers=1)
    assert {p: p.stat().st_mtime_ns for p in files} == before


def test_heatmap_and_folder_plots_written(grid_dir, tmp_path):
    out, *_ = grid_dir
    cells = [c for c in load_results(out) if not c["omit_needle"]]
    png = heatmap(cells, tmp_path / "h.png", tier="base")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = grid_table(cells, tier="base")
    assert table.lengths == (1000, 3000) and table.values == ((1.0, 1.0),)
    names = {p.name for p in plot_folder(load_results(out), tmp_path)}
    assert "heatmap_pydoc_single-word_base.png" in names
    assert "heatmap_control-pydoc_single-word_base.png" in names


# -- the packed (published) form ----------------------------------------------------


def _fake_cell(length, depth, tier, score=1.0, **extra):
    cell = {"model": "tesseract", "context_length": length, "depth_percent": depth, "tier": tier,
            "score": score, "haystack": "pydoc", "needle_kind": "single", "value_type": "number",
            "omit_needle": False, "decoder": "tesseract", "target": "deepseek-ocr:base",
            "tokenizer": "o200k_base", "seed": 0, "font_px": 11.0, "needle": "Ünïcode ✓"}
    cell.update(extra)
    return cell


def test_pack_and_read_back_cells(tmp_path):
    from optical_memory.niah import cells_for, pack_cells, read_packed, unpack_cells, write_packed

    cfg = NiahConfig(lengths=(1000, 2000), depths=(0.0, 50.0), tiers=("base", "tiny"),
                     decoder="tesseract")
    run = tmp_path / "run"
    run.mkdir()
    cells = [_fake_cell(n, d, t, score=0.5 if t == "tiny" else 1.0)
             for n in cfg.lengths for d in cfg.depths for t in cfg.tiers]
    for c in cells:
        (run / cfg.cell_name(c["context_length"], c["depth_percent"], c["tier"])).write_text(
            json.dumps(c, indent=1), encoding="utf-8")
    (run / "not-a-cell.json").write_text("{}", encoding="utf-8")
    packed = pack_cells(run, tmp_path / "cells.jsonl.gz")
    back = read_packed(packed)
    # same content, one object per line, sorted: length, depth, then tiers youngest first
    assert back == sorted(cells, key=lambda c: (c["context_length"], c["depth_percent"],
                                                ["base", "tiny"].index(c["tier"])))
    assert load_results(packed) == back
    # deterministic bytes, whatever the input order; gzip header has no mtime or name
    again = write_packed(list(reversed(cells)), tmp_path / "again.jsonl.gz")
    assert again.read_bytes() == packed.read_bytes()
    assert packed.read_bytes()[3:8] == b"\x00\x00\x00\x00\x00"
    # merge: cells already in the file stay; a folder's cell replaces its twin
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.json").write_text(json.dumps(_fake_cell(1000, 0.0, "base", score=0.0)), encoding="utf-8")
    (other / "y.json").write_text(json.dumps(_fake_cell(9000, 0.0, "base", haystack="chat")),
                                  encoding="utf-8")
    merged = read_packed(pack_cells([other], packed))
    assert len(merged) == len(cells) + 1
    assert next(c for c in merged if c["context_length"] == 1000 and c["depth_percent"] == 0.0
                and c["tier"] == "base")["score"] == 0.0
    # a config's cells, in grid order; the chat cell is not pydoc's
    assert [(c["context_length"], c["tier"]) for c in cells_for(cfg, merged)][:3] == [
        (1000, "base"), (1000, "tiny"), (1000, "base")]
    assert len(cells_for(cfg, merged)) == 8
    # unpacked into a fresh folder: resume finds every cell, runs none
    fresh = tmp_path / "fresh"
    assert unpack_cells(packed, fresh, cfg) == 8 and unpack_cells(packed, fresh, cfg) == 0
    summary = run_grid(cfg, fresh, workers=1)
    assert summary.ran == 0 and summary.skipped == 8
    with pytest.raises(InputError):
        write_packed([{"not": "a cell"}], tmp_path / "bad.jsonl.gz")


def test_published_niah_cells_repack_to_the_same_bytes(tmp_path):
    from pathlib import Path

    from optical_memory.niah import read_packed, write_packed

    published = Path(__file__).resolve().parents[1] / "benchmarks" / "niah" / "cells.jsonl.gz"
    if not published.exists():
        pytest.skip("no published NIAH cells in this checkout")
    cells = read_packed(published)
    assert cells and all(0 <= c["score"] <= 1 for c in cells)
    assert write_packed(cells, tmp_path / "c.jsonl.gz").read_bytes() == published.read_bytes()


def test_forgetting_table_and_curve_from_cells(tmp_path):
    def cell(tier, score, side, vt):
        return {"tier": tier, "score": score, "retrieved": 1.0, "ratio": 2800 / vt,
                "page_ratio": 2800 / vt, "vision_tokens": vt, "pages": 1, "tier_size": [side, side],
                "readback_precision": None, "context_length": 1000, "depth_percent": 0.0}

    cells = [cell("tiny", 0.0, 512, 73), cell("base", 1.0, 1024, 273), cell("base", 0.5, 1024, 273),
             cell("small", 1.0, 640, 111)]
    rows = forgetting_table(cells)
    assert [r.tier for r in rows] == ["base", "small", "tiny"]
    assert [r.recall for r in rows] == [75.0, 100.0, 0.0]
    assert rows[0].ratio == pytest.approx(2800 / 273)
    assert forgetting_curve(cells, tmp_path / "f.png").stat().st_size > 1000


# -- the answer stage, against a local stub ---------------------------------------


def _needles_for(length: int, depth: float):
    return make_needles("single", "number", seed=cell_seed(0, length, depth),
                        haystack=banned_text("pydoc"))


@pytest.mark.parametrize("right", [True, False])
def test_answer_stage_scores_the_reply(tmp_path, right):
    ns = _needles_for(1000, 50.0)
    value = ns.references[0]
    reply = f"The special magic number is {value}." if right else "I could not find it."
    with StubOpenAI(reply_text=reply) as stub:
        cfg = NiahConfig(lengths=(1000,), depths=(50.0,), tiers=("tiny",), readback=False,
                         answer=AnswerEndpoint(stub.base_url, "vlm-test"))
        summary = run_grid(cfg, tmp_path, workers=1)
        (req,) = stub.requests
    (cell,) = summary.results
    assert cell["answer_score"] == cell["score"] == (1.0 if right else 0.0)
    assert cell["model"] == "vlm-test" and cell["decoder"] is None
    parts = req["body"]["messages"][0]["content"]
    images = [p for p in parts if p["type"] == "image_url"]
    assert len(images) == cell["pages"]
    assert parts[-1] == {"type": "text", "text": ns.question}
    assert req["path"] == "/v1/chat/completions"


def test_config_rejects_bad_values():
    with pytest.raises(InputError):
        NiahConfig(lengths=(1000,), depths=(120,))
    with pytest.raises(InputError):
        NiahConfig(lengths=(1000,), depths=(50,), readback=False)
    from optical_memory.errors import ConfigError

    with pytest.raises(ConfigError):
        NiahConfig(lengths=(1000,), depths=(50,), tiers=("huge",))
    for bad in (0, 0.0, -3, float("nan"), True):
        with pytest.raises(InputError, match="font_px"):
            NiahConfig(lengths=(1000,), depths=(50,), font_px=bad)


# -- CLI -------------------------------------------------------------------------


def test_cli_help_everywhere():
    runner = CliRunner()
    for args in (["niah", "--help"], ["niah", "run", "--help"], ["niah", "plot", "--help"],
                 ["niah", "pack", "--help"]):
        res = runner.invoke(main, args)
        assert res.exit_code == 0 and "Usage" in res.output


def test_cli_run_answer_only_then_plot(tmp_path):
    from optical_memory.cli.niah import parse_numbers

    assert parse_numbers("1000..64000x15", integer=True)[::7] == [1000, 32500, 64000]
    assert parse_numbers("0,50,100", integer=False) == [0.0, 50.0, 100.0]
    value = _needles_for(1000, 50.0).references[0]
    runner = CliRunner()
    with StubOpenAI(reply_text=f"It is {value}.") as stub:
        res = runner.invoke(main, ["niah", "run", "--lengths", "1000", "--depths", "50",
                                   "--tiers", "base,tiny", "--no-readback", "--answer-url",
                                   stub.base_url, "--answer-model", "m", "--out", str(tmp_path),
                                   "--workers", "1", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output[res.output.index("{"):])
    assert data["cells"] == 2 and data["ran"] == 2
    assert [t["tier"] for t in data["tiers"]] == ["base", "tiny"]
    assert all(t["recall"] == 100.0 for t in data["tiers"])
    assert any(p.endswith("forgetting_pydoc_single-number.png") for p in data["png"])
    res = runner.invoke(main, ["niah", "plot", str(tmp_path), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["cells"] == 2
    packed = tmp_path / "pub" / "cells.jsonl.gz"
    res = runner.invoke(main, ["niah", "pack", str(tmp_path), "--to", str(packed)])
    assert res.exit_code == 0 and "2 cells" in res.output, res.output
    res = runner.invoke(main, ["niah", "plot", str(packed), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["cells"] == 2, res.output
    assert all(p.startswith(str(packed.parent)) for p in json.loads(res.output)["png"])
    assert runner.invoke(main, ["niah", "pack", str(tmp_path), "--to",
                                str(tmp_path / "x.json")]).exit_code == 2
    assert runner.invoke(main, ["niah", "run", "--out", str(tmp_path), "--answer-url",
                                "http://127.0.0.1:9/v1"]).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(main, ["niah", "plot", str(empty)])
    assert res.exit_code == 1 and "no needle-in-a-haystack" in res.output
