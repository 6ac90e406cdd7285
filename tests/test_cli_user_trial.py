"""What a new user tripped on, trying the CLI on their own material: documents
missing from ``list``, an item's metadata and pages missing from ``show``, an
item id given to ``export``, a file written into a folder that does not exist,
a byte-order mark, the demo's scope, a ratio printed for no pages, and
help texts that forgot the native reader."""
from __future__ import annotations

import json

from click.testing import CliRunner

from optical_memory import InputError, OpticalMemory
from optical_memory.cli import main


def _run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _doc_and_turns(user: str) -> tuple[str, list[str]]:
    res = _run("add", "-", "--user", user, "--title", "heron notes", "--json",
               input="Notes on the heron migration and the deploy key 7788. " * 300)
    assert res.exit_code == 0, res.output
    (doc,) = json.loads(res.stdout)["item_ids"]
    turns = "\n".join(json.dumps({"role": "user", "content": f"turn {i} about herons"})
                      for i in range(3))
    res = _run("add", "-", "--chat", "--user", user, "--json", input=turns)
    assert res.exit_code == 0, res.output
    return doc, json.loads(res.stdout)["item_ids"]


def test_list_items_shows_documents_as_well_as_turns(memory_home):
    doc, turns = _doc_and_turns("li")
    listed = json.loads(_run("list", "--user", "li", "--json").stdout)
    assert [r["id"] for r in listed["rows"]] == turns  # `list` (turns) has no documents
    items = json.loads(_run("list", "items", "--user", "li", "--json").stdout)
    assert items["what"] == "items" and items["total"] == 4
    assert [r["id"] for r in items["rows"]] == [doc, *turns]
    assert items["rows"][0]["kind"] == "document" and len(items["rows"][0]["page_ids"]) == 1
    paged = json.loads(_run("list", "items", "--user", "li", "--limit", "2", "--offset", "1",
                            "--json").stdout)
    assert [r["id"] for r in paged["rows"]] == turns[:2]
    human = _run("list", "items", "--user", "li")
    assert human.exit_code == 0, human.output
    assert "items 1–4 of 4" in human.output and doc in human.output
    assert "document" in human.output and "[heron notes]" in human.output
    assert "no items under user 'nobody'" in _run("list", "items", "--user", "nobody").output


def test_show_an_item_names_its_metadata_and_its_pages(memory_home):
    with OpticalMemory() as mem:
        added = mem.add("Herons nest by the northern lake. " * 200, user_id="sh",
                        metadata={"topic": "birds", "priority": 2})
        pages = mem.get(added.item_ids[0], user_id="sh").page_ids
    assert pages
    item = added.item_ids[0]
    shown = json.loads(_run("show", item[:6], "--user", "sh", "--json").stdout)
    assert shown["record"] == "item" and shown["metadata"] == {"topic": "birds", "priority": 2}
    assert shown["page_ids"] == list(pages)
    human = _run("show", item, "--user", "sh").output
    assert "metadata: priority=2, topic=birds" in human and f"page_ids: {pages[0]}" in human


def test_export_given_an_item_id_says_it_is_an_item(memory_home, tmp_path):
    doc, _ = _doc_and_turns("ex")
    res = _run("export", doc[:8], "-o", tmp_path / "x.png", "--user", "ex")
    assert res.exit_code == 1 and "is an item, not a page" in res.output, res.output
    assert f"optical-memory show {doc[:8]}" in res.output
    assert not (tmp_path / "x.png").exists()


def test_export_into_a_missing_folder_is_a_clean_error(memory_home, tmp_path):
    _doc_and_turns("mf")
    (page,) = [r["id"] for r in json.loads(_run("list", "pages", "--user", "mf",
                                                 "--json").stdout)["rows"]]
    target = tmp_path / "no" / "such" / "page.png"
    res = _run("export", page, "-o", target, "--user", "mf")
    assert res.exit_code == 1, res.output
    assert res.output.strip() == f"Error: cannot write {target}: No such file or directory"
    assert not (tmp_path / "no").exists()


def test_a_byte_order_mark_is_not_part_of_the_text(memory_home):
    bom = "\ufeff"
    res = _run("add", "-", "--chat", "--user", "bom", "--json",
               input=(bom + json.dumps({"role": "user", "content": "herons"}) + "\n").encode())
    assert res.exit_code == 0, res.output
    res = _run("add", "-", "--user", "bom", "--json",
               input=(bom + "Heron notes. " * 50).encode())
    assert res.exit_code == 0, res.output
    (doc,) = json.loads(res.stdout)["item_ids"]
    text = json.loads(_run("show", doc, "--user", "bom", "--json").stdout)["text"]
    assert text.startswith("Heron notes.")


def test_demo_names_the_user_its_session_is_stored_under(memory_home, tmp_path):
    res = _run("demo", "--turns", "60", "--budget", "8000", "--decoder", "native", "--out",
               tmp_path / "d1", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["user"] == "demo" and data["session"].startswith("demo-")
    found = _run("search", "passphrase", "--user", data["user"], "--session", data["session"])
    assert "passphrase" in found.output.lower()  # where the line says it is
    human = _run("demo", "--turns", "60", "--budget", "8000", "--decoder", "native", "--out",
                 tmp_path / "d2").output
    assert "stored under user demo, session demo-" in human


def test_context_without_pages_prints_no_ratio_for_them(memory_home):
    _run("add", "-", "--chat", "--user", "np",
         input=json.dumps({"role": "user", "content": "herons by the lake"}))
    res = _run("context", "--budget", "2000", "--user", "np")
    assert res.exit_code == 0, res.output
    assert "paged part - (no pages)" in res.output and "paged part 0.0x" not in res.output


def test_decode_help_names_every_decoder():
    out = _run("decode", "--help").output
    for name in ("tesseract", "native", "rapidocr", "openai"):
        assert name in out


def test_context_markdown_names_tool_calls_in_either_shape(memory_home):
    log = [{"role": "user", "content": "weather in Oslo and Bergen?"},
           {"role": "assistant", "content": None, "tool_calls": [  # OpenAI's shape
               {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "-3C, snow"},
           {"role": "assistant", "content": "And Bergen:", "tool_calls": [  # LangChain's
               {"id": "call_2", "name": "get_weather", "args": {"city": "Bergen"}}]},
           {"role": "tool", "tool_call_id": "call_2", "content": "4C, rain"}]
    res = _run("add", "-", "--chat", "--user", "tc", input=json.dumps(log))
    assert res.exit_code == 0, res.output
    res = _run("context", "--budget", "4000", "--user", "tc", "--print", "markdown")
    assert res.exit_code == 0, res.output
    assert "tool call `get_weather` (call_1): `{\"city\": \"Oslo\"}`" in res.stdout
    assert "tool call `get_weather` (call_2): `{\"city\": \"Bergen\"}`" in res.stdout
    assert "`None`" not in res.stdout and "`null`" not in res.stdout
    assert "## assistant\n\ntool call" in res.stdout  # no blank paragraph for no text


def test_context_query_brings_the_matching_passage_off_an_aged_page(memory_home):
    from optical_memory import generate_conversation

    with OpticalMemory() as mem:
        mem.add([{"role": "user", "content": "The Lindholm depot access code is 739215."}],
                user_id="q")
        mem.add(generate_conversation(tokens=60000, seed=2).messages, user_id="q")
    argv = ["context", "--budget", "6000", "--user", "q", "--age-mode", "fade", "--json"]
    plain = json.loads(_run(*argv).stdout)
    asked = json.loads(_run(*argv, "--query", "Lindholm depot access code").stdout)
    assert plain["query_tokens"] == 0 and asked["query_tokens"] > 0
    shown = _run("context", "--budget", "6000", "--user", "q", "--age-mode", "fade",
                 "--query", "Lindholm depot access code", "--print", "json").stdout
    assert "739215" in shown


def test_search_stats_list_import_no_heavy_module(tmp_path):
    """README: `--help` and `search` import neither numpy, skia nor the
    tokenizer (docs/architecture.md: nor `stats` and `list`); the legible
    aging and query-aware context modules had brought numpy back."""
    import subprocess
    import sys

    store = tmp_path / "m.db"
    assert _run("add", "-", "--user", "h", "--store", store,
                input="Heron notes and the lake. " * 400).exit_code == 0
    for argv in (["search", "herons"], ["stats"], ["list"], ["list", "items"]):
        code = ("import sys\nfrom optical_memory.cli import main\n"
                f"main({[*argv, '--user', 'h', '--store', str(store)]!r}, "
                "standalone_mode=False)\n"
                "print(sorted(m for m in ('numpy', 'skia', 'tiktoken', 'torch')"
                " if m in sys.modules))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=False)
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().splitlines()[-1] == "[]", (argv, res.stdout)


def test_add_metadata_is_stored_and_search_filters_on_it(memory_home):
    res = _run("add", "-", "--user", "md", "--metadata", '{"project": "atlas", "n": 1}', "--json",
               input="The atlas depot code is 4410. " * 20)
    assert res.exit_code == 0, res.output
    (atlas,) = json.loads(res.stdout)["item_ids"]
    turns = json.dumps([{"role": "user", "content": "the zephyr depot code is 9921"}])
    res = _run("add", "-", "--chat", "--user", "md", "--metadata", '{"project": "zephyr"}',
               "--json", input=turns)
    assert res.exit_code == 0, res.output
    (zephyr,) = json.loads(res.stdout)["item_ids"]
    with OpticalMemory() as mem:
        assert mem.get(atlas, user_id="md").metadata == {"project": "atlas", "n": 1}
        assert mem.get(zephyr, user_id="md").metadata == {"project": "zephyr"}
    hits = json.loads(_run("search", "depot code", "--user", "md", "--json").stdout)
    assert {h["item_id"] for h in hits} == {atlas, zephyr}
    for project, want in (("atlas", atlas), ("zephyr", zephyr)):
        res = _run("search", "depot code", "--user", "md", "--json",
                   "--metadata", json.dumps({"project": project}))
        assert res.exit_code == 0, res.output
        assert [h["item_id"] for h in json.loads(res.stdout)] == [want]


def test_bad_metadata_is_refused_before_anything_is_stored(memory_home, tmp_path):
    store = tmp_path / "m.db"
    for bad in ("{not json", "[1, 2]", '{"": 1}'):
        res = _run("add", "-", "--store", store, "--metadata", bad, input="some text")
        assert res.exit_code == 2 and "--metadata" in res.output, res.output
        assert "Traceback" not in res.output
    assert not store.exists()  # refused at parse time: no store created
    _run("add", "-", "--store", store, input="some text")
    res = _run("search", "text", "--store", store, "--metadata", '{"k": [1]}')
    assert res.exit_code == 2 and "--metadata" in res.output, res.output


def test_update_replaces_an_items_text_and_metadata_by_prefix(memory_home, tmp_path):
    doc, turns = _doc_and_turns("up")
    res = _run("update", doc[:8], "--text", "The heron moved to the north pond.", "--user", "up",
               "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["item_id"] == doc and data["previous_text"].startswith("Notes on the heron")
    assert data["replaced"] and data["repaged"]
    with OpticalMemory() as mem:
        item = mem.get(doc, user_id="up")
        assert item.text == "The heron moved to the north pond."
        assert set(item.page_ids) <= set(data["repaged"])
    new = tmp_path / "new.txt"
    new.write_text("turn zero, rewritten from a file")
    res = _run("update", turns[0], "--file", new, "--metadata", '{"edited": true}', "--user", "up")
    assert res.exit_code == 0, res.output
    assert f"updated item {turns[0]} and its metadata" in res.output
    res = _run("update", turns[1], "-", "--user", "up", input="turn one, from stdin")
    assert res.exit_code == 0, res.output
    res = _run("update", turns[2], "--metadata", '{"v": 2}', "--user", "up")
    assert res.exit_code == 0 and "updated the metadata" in res.output, res.output
    with OpticalMemory() as mem:
        first = mem.get(turns[0], user_id="up")
        assert first.text == "turn zero, rewritten from a file"
        assert first.metadata == {"edited": True}
        assert mem.get(turns[1], user_id="up").text == "turn one, from stdin"
        assert mem.get(turns[2], user_id="up").metadata == {"v": 2}
        assert mem.get(turns[2], user_id="up").text == "turn 2 about herons"


def test_update_refusals_change_nothing(memory_home, tmp_path):
    _, turns = _doc_and_turns("ur")
    for argv, code in (((turns[0],), 2),  # nothing to update
                       ((turns[0], "--text", "a", "-"), 2),  # two sources
                       ((turns[0], "extra"), 2),
                       ((turns[0], "--metadata", "[1]"), 2),
                       ((turns[0], "--text", "   "), 1),  # empty: EmptyInputError
                       (("ffffffff", "--text", "x"), 1),  # no such item
                       ((turns[0], "--text", "x", "--user", "someone-else"), 1)):
        res = _run("update", *argv, *(() if "--user" in argv else ("--user", "ur")), input="y")
        assert res.exit_code == code, (argv, res.output)
        assert "Traceback" not in res.output
    with OpticalMemory() as mem:
        assert mem.get(turns[0], user_id="ur").text == "turn 0 about herons"
        assert mem.get(turns[0], user_id="ur").metadata == {}


LANGCHAIN_LOG = [  # messages_to_dict output, as langchain_core writes it
    {"type": "system", "data": {"content": "You are the heron desk.", "additional_kwargs": {},
                                "response_metadata": {}, "type": "system", "name": None,
                                "id": None}},
    {"type": "human", "data": {"content": "Where did the heron go?", "additional_kwargs": {},
                               "response_metadata": {}, "type": "human", "name": None,
                               "id": None, "example": False}},
    {"type": "ai", "data": {"content": [{"type": "text", "text": "Let me look."},
                                        "It was seen"],
                            "additional_kwargs": {}, "response_metadata": {}, "type": "ai",
                            "name": None, "id": "run-1", "example": False,
                            "tool_calls": [{"name": "lookup", "args": {"bird": "heron"},
                                            "id": "call_7", "type": "tool_call"}],
                            "invalid_tool_calls": [], "usage_metadata": None}},
    {"type": "tool", "data": {"content": "north pond", "additional_kwargs": {},
                              "response_metadata": {}, "type": "tool", "name": "lookup",
                              "id": None, "tool_call_id": "call_7", "artifact": None,
                              "status": "success"}},
]


def test_add_chat_reads_langchain_serialised_messages(memory_home, tmp_path):
    flat = [{"type": "human", "content": "and the egret?"},
            {"type": "ai", "content": [{"type": "text", "text": "also"},
                                       {"type": "text", "text": "north"}]}]
    log = tmp_path / "lc.json"
    log.write_text(json.dumps(LANGCHAIN_LOG + flat))
    res = _run("add", log, "--chat", "--user", "lc", "--json")
    assert res.exit_code == 0, res.output
    ids = json.loads(res.stdout)["item_ids"]
    with OpticalMemory() as mem:
        recs = [mem.get_item(i, user_id="lc") for i in ids]
    assert [r.role for r in recs] == ["system", "user", "assistant", "tool", "user", "assistant"]
    assert recs[1].text == "Where did the heron go?"
    assert recs[2].text.startswith("Let me look.\nIt was seen\n→ lookup(")
    assert recs[2].tool_call_ids == ("call_7",)
    assert recs[3].tool_call_ids == ("call_7",) and recs[3].name == "lookup"
    assert recs[5].text == "also\nnorth"


def test_add_chat_names_a_langchain_part_it_cannot_store(memory_home, tmp_path):
    image = {"type": "human", "data": {"content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}}
    for bad, says in (([image], "content[1] is a 'image_url' block"),
                      ([{"type": "robot", "content": "beep"}], "'robot'")):
        log = tmp_path / "bad.jsonl"
        log.write_text("\n".join(json.dumps(m) for m in bad) + "\n")
        res = _run("add", log, "--chat", "--user", "lcbad")
        assert res.exit_code == 1 and says in res.output, res.output
        assert f"{log}:1" in res.output and "Traceback" not in res.output


def test_tiers_verify_judges_legibility_on_the_measured_read_back():
    """``--verify`` makes a memory age each page by what it read back; ``tiers
    --verify`` judges the tiers the same way, on the sample page's read-back."""
    floor = 0.97
    res = _run("tiers", "--decoder", "native", "--verify", "--min-readback", floor, "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert all(r["legible_from"] == "measured" for r in rows)
    assert [r["legible"] for r in rows] == [r["precision"] >= floor for r in rows]
    plain = json.loads(_run("tiers", "--decoder", "native", "--no-decode", "--json").stdout)
    assert all(r["legible_from"] == "calibrated" for r in plain)
    assert [r["legible"] for r in plain] == [r["calibrated"] >= 0.95 for r in plain]
    table = _run("tiers", "--decoder", "native", "--verify")
    assert table.exit_code == 0 and "as measured on each page" in table.output, table.output
    res = _run("tiers", "--verify", "--no-decode")
    assert res.exit_code == 2 and "--no-decode" in res.output, res.output


def test_an_unknown_decoder_is_a_decoder_error_naming_the_known_ones(memory_home):
    from optical_memory import UnknownDecoderError, UnknownTargetError
    from optical_memory.decode import decoder_names

    assert issubclass(UnknownDecoderError, UnknownTargetError)  # callers catching it still do
    for argv in (("tiers", "--no-decode"), ("add", "-", "--user", "dec")):
        res = _run(*argv, "--decoder", "foo", input="some notes")
        assert res.exit_code == 1, res.output
        assert "UnknownDecoderError: unknown decoder 'foo'" in res.output, res.output
        assert all(name in res.output for name in decoder_names())
    assert not (memory_home / "memory.db").exists()  # refused before the store is opened


def test_the_budget_error_names_the_cli_flag(memory_home):
    turns = json.dumps([{"role": "user", "content": f"turn {i} about the heron " * 20}
                        for i in range(4)])
    assert _run("add", "-", "--chat", "--user", "bud", input=turns).exit_code == 0
    res = _run("context", "--budget", 50, "--keep-last", 3, "--user", "bud")
    assert res.exit_code == 1 and "below the text that must stay" in res.output, res.output
    assert "lower --keep-last" in res.output and "keep_last" not in res.output
    with OpticalMemory() as mem:  # the library keeps its own parameter name
        try:
            mem.context(50, keep_last=3, user_id="bud")
        except InputError as exc:
            assert "lower keep_last" in str(exc) and exc.params == ("keep_last",)
        else:
            raise AssertionError("no budget error")


def test_tiers_for_a_small_page_target_says_so_in_words_not_a_log_warning():
    """openai:gpt-4o's pages are 512 px wide; no layout calibrated for that
    side reaches the memory's read-back aim, so the most legible one is used.
    That is said in the table's caption, not as a logging warning."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "optical_memory", "tiers", "--target",
                          "openai:gpt-4o", "--no-decode"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    assert "WARNING" not in res.stderr and res.stderr.strip() == "", res.stderr
    assert "no calibrated layout reaches read-back 0.98" in res.stdout, res.stdout
    plain = _run("tiers", "--no-decode")  # the default target's layout reaches it
    assert "no calibrated layout reaches" not in plain.output
