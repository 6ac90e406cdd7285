"""The CLI habits people expect (llm / sqlite-utils / git): full ids and unique
prefixes, read-only commands that never create a store, list/show/export,
context --print, decode from stdin, output folders that are never mixed,
plain tables in pipes, chat logs in three shapes, a demo without tesseract."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from optical_memory.cli import common as cli_common, main

ROOT = Path(__file__).resolve().parents[1]
BOX = set("┏┓┗┛┃━│─┡┩╇┳┻╋└┘┌┐├┤")


def _run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


def _turns(n: int, topic: str = "herons") -> str:
    return "\n".join(json.dumps({"role": "user" if i % 2 == 0 else "assistant",
                                 "content": f"turn {i} about {topic}: herons and the lake"})
                     for i in range(n)) + "\n"


def _add_turns(n: int, user: str, topic: str = "herons") -> list[str]:
    res = _run("add", "-", "--chat", "--user", user, "--json", input=_turns(n, topic))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["item_ids"]


def _add_doc(user: str) -> str:
    res = _run("add", "-", "--user", user, "--json",
               input="Notes on the heron migration and the deploy key 7788. " * 300)
    assert res.exit_code == 0, res.output
    (page,) = [r["id"] for r in json.loads(_run("list", "pages", "--user", user,
                                                 "--json").stdout)["rows"]]
    return page


# -- ids ---------------------------------------------------------------------------


def test_tables_show_full_ids_and_prefixes_resolve(memory_home):
    ids = _add_turns(4, "ids")
    res = _run("search", "herons", "--user", "ids")
    assert res.exit_code == 0, res.output
    assert any(i in res.output for i in ids)  # the whole 32-character id, not a cut one
    listed = _run("list", "--user", "ids").output
    assert all(i in listed for i in ids)
    shown = json.loads(_run("show", ids[1][:6], "--user", "ids", "--json").stdout)
    assert shown["id"] == ids[1] and shown["record"] == "item" and shown["kind"] == "turn" and "turn 1" in shown["text"]
    res = _run("delete", ids[0][:8], "--user", "ids", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["items"] == 1, res.output
    assert json.loads(_run("stats", "--user", "ids", "--json").stdout)["items"] == 3


def test_ambiguous_prefix_is_an_error_naming_the_matches(memory_home, monkeypatch):
    ids = _add_turns(40, "amb")  # 40 random hex ids: some first character is shared
    monkeypatch.setattr(cli_common, "MIN_PREFIX", 1)
    first = [i[0] for i in ids]
    shared = next(c for c in first if first.count(c) > 1)
    res = _run("show", shared, "--user", "amb")
    assert res.exit_code == 1 and "ambiguous" in res.output, res.output
    assert sum(i in res.output for i in ids if i.startswith(shared)) >= 2
    res = _run("delete", shared, "--user", "amb")
    assert res.exit_code == 1 and "ambiguous" in res.output
    assert json.loads(_run("stats", "--user", "amb", "--json").stdout)["items"] == 40


def test_delete_that_matches_nothing_exits_1_and_deletes_nothing(memory_home):
    ids = _add_turns(6, "none")
    for given in ("ffffffffffff", "ab", ids[0] + "0"):
        res = _run("delete", given, "--user", "none")
        assert res.exit_code == 1 and "no item" in res.output, res.output
    res = _run("delete", ids[0], "zzzz9999", "--user", "none")  # one bad id: none deleted
    assert res.exit_code == 1
    res = _run("delete", ids[0], "--user", "someone-else")  # another scope sees nothing
    assert res.exit_code == 1 and "someone-else" in res.output
    assert json.loads(_run("stats", "--user", "none", "--json").stdout)["items"] == 6
    res = _run("delete", "--all", "--yes", "--user", "empty-user")
    assert res.exit_code == 1 and "nothing deleted" in res.output


# -- read-only commands never create a store ------------------------------------------


@pytest.mark.parametrize("argv", [
    ("stats",), ("search", "x"), ("context", "--budget", "1000"), ("list",),
    ("list", "pages"), ("show", "abcdef"), ("export", "abcdef", "-o", "x.png"),
    ("decode-page", "abcdef"), ("delete", "abcdef"), ("compact",),
    ("update", "abcdef", "--text", "x"),
])
def test_read_only_commands_never_create_a_store(tmp_path, argv):
    missing = tmp_path / "typo" / "deeper" / "memroy.db"
    for store in (str(missing), f"sqlite://{missing}"):
        res = _run(*argv, "--store", store)
        assert res.exit_code == 1, res.output
        assert f"no memory store at {missing}" in res.output, res.output
        assert "Traceback" not in res.output
    assert not (tmp_path / "typo").exists()


def test_the_default_store_is_not_created_by_reading(memory_home):
    res = _run("stats")
    assert res.exit_code == 1 and str(memory_home / "memory.db") in res.output
    assert not memory_home.exists()


# -- list / show / export / decode - ----------------------------------------------------


def test_list_is_paginated(memory_home):
    ids = _add_turns(12, "pages")
    data = json.loads(_run("list", "--user", "pages", "--limit", "5", "--offset", "5",
                           "--json").stdout)
    assert data["total"] == 12 and [r["id"] for r in data["rows"]] == ids[5:10]
    newest = json.loads(_run("list", "--user", "pages", "--limit", "2", "--newest-first",
                             "--json").stdout)
    assert [r["id"] for r in newest["rows"]] == ids[::-1][:2]
    res = _run("list", "--user", "pages", "--limit", "5")
    assert "turns 1–5 of 12" in res.output and "more: --offset 5" in res.output
    assert "no turns" in _run("list", "--user", "pages", "--offset", "50").output


def test_show_and_export_a_page(memory_home, tmp_path):
    page = _add_doc("doc")
    shown = json.loads(_run("show", page[:5], "--user", "doc", "--json").stdout)
    assert shown["record"] == "page" and shown["id"] == page and shown["tier"] == "base"
    assert "heron migration" in shown["text"] and "png" not in shown
    human = _run("show", page, "--user", "doc").output
    assert f"id: {page}" in human and "heron migration" in human

    out = tmp_path / "small.png"
    res = _run("export", page[:6], "--tier", "small", "-o", out, "--user", "doc")
    assert res.exit_code == 0, res.output
    assert Image.open(out).size == (640, 640) and (out.stat().st_mode & 0o777) == 0o600
    res = _run("export", page, "--tier", "small", "-o", out, "--user", "doc")
    assert res.exit_code == 1 and "--force" in res.output
    res = _run("export", page, "-o", out, "--force", "--user", "doc")
    assert res.exit_code == 0 and Image.open(out).size == (1024, 1024)
    res = _run("export", page, "--tier", "nope", "-o", tmp_path / "x.png", "--user", "doc")
    assert res.exit_code == 1 and "unknown tier" in res.output
    piped = CliRunner().invoke(main, ["export", page, "-o", "-", "--user", "doc"])
    assert piped.stdout_bytes.startswith(b"\x89PNG")


def test_decode_reads_a_png_from_stdin(memory_home, tmp_path):
    page = _add_doc("stdin")
    png = CliRunner().invoke(main, ["export", page, "-o", "-", "--user", "stdin"]).stdout_bytes
    res = CliRunner().invoke(main, ["decode", "-", "--decoder", "native", "--json"], input=png)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["pages"][0]["image"] == "-" and "heron" in data["pages"][0]["text"]
    res = CliRunner().invoke(main, ["decode", "-", "--decoder", "native"], input=b"")
    assert res.exit_code == 1 and "stdin is empty" in res.output
    res = CliRunner().invoke(main, ["decode", "-", "-", "--decoder", "native"], input=png)
    assert res.exit_code == 2


# -- context --print and --out ------------------------------------------------------------


def test_context_prints_its_messages(memory_home, tmp_path):
    _add_doc("ctx")
    _add_turns(4, "ctx")
    res = _run("context", "--budget", "4000", "--user", "ctx", "--system", "Be brief.",
               "--print", "json")
    assert res.exit_code == 0, res.output
    messages = json.loads(res.stdout)
    assert messages[0] == {"role": "system", "content": "Be brief."}
    images = [p for m in messages if isinstance(m["content"], list) for p in m["content"]
              if p["type"] == "image"]
    assert len(images) == 1 and Image.open(io.BytesIO(__import__("base64").b64decode(
        images[0]["base64"]))).size == (1024, 1024)
    out = tmp_path / "pages"
    res = _run("context", "--budget", "4000", "--user", "ctx", "--print", "markdown",
               "--out", out)
    assert res.exit_code == 0, res.output
    assert "## user" in res.stdout and "turn 3 about herons" in res.stdout
    (png,) = out.glob("page-*.png")
    assert f"]({png})" in res.stdout
    res = _run("context", "--budget", "4000", "--user", "ctx", "--print", "json", "--json")
    assert res.exit_code == 2


def test_out_refuses_a_used_folder_unless_force(memory_home, tmp_path):
    _add_doc("out")
    out = tmp_path / "pages"
    out.mkdir()
    (out / "page-0099-base-stale.png").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    res = _run("context", "--budget", "4000", "--user", "out", "--out", out)
    assert res.exit_code == 1 and "not empty" in res.output and "--force" in res.output
    res = _run("context", "--budget", "4000", "--user", "out", "--out", out, "--force",
               "--json")
    assert res.exit_code == 0, res.output
    written = json.loads(res.stdout)["page_files"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [Path(w).name for w in written] + ["notes.txt"])  # stale page gone, other file kept
    src = tmp_path / "t.txt"
    src.write_text("hello pages " * 50)
    res = _run("render", src, "--out", out)
    assert res.exit_code == 1 and "--force" in res.output
    assert _run("render", src, "--out", out, "--force").exit_code == 0
    assert [p.name for p in out.glob("page-*.png")] == ["page-0001.png"]


# -- plain output, chat shapes ---------------------------------------------------------------


def test_tables_are_plain_when_stdout_is_not_a_terminal(memory_home):
    ids = _add_turns(3, "plain")
    for argv in (("search", "herons"), ("stats",), ("list",),
                 ("context", "--budget", "2000"), ("targets",)):
        res = _run(*argv, "--user", "plain") if argv[0] != "targets" else _run(*argv)
        assert res.exit_code == 0, res.output
        assert not BOX & set(res.stdout), res.stdout
        assert "\x1b[" not in res.stdout
    assert ids[0] in _run("search", "turn 0", "--user", "plain").stdout


def test_add_chat_reads_jsonl_a_json_array_and_a_messages_object(memory_home):
    messages = [{"role": "user", "content": "which lake do herons prefer"},
                {"role": "assistant", "content": "the northern one"}]
    shapes = {
        "jsonl": "\n".join(json.dumps(m) for m in messages),
        "array": json.dumps(messages, indent=2),
        "object": json.dumps({"model": "gpt-4o", "messages": messages}),
    }
    for user, text in shapes.items():
        res = _run("add", "-", "--chat", "--user", user, "--json", input=text)
        assert res.exit_code == 0, res.output
        rows = json.loads(_run("list", "--user", user, "--json").stdout)["rows"]
        assert [(r["role"], r["text"]) for r in rows] == [
            ("user", "which lake do herons prefer"), ("assistant", "the northern one")]
    res = _run("add", "-", "--chat", input=json.dumps({"messages": [messages[0], 7]}))
    assert res.exit_code == 1 and "messages[1]" in res.output
    res = _run("add", "-", "--chat", input='[{"role": "user", "content": "x"},')
    assert res.exit_code == 1 and "not a JSON array" in res.output


# -- demo without tesseract ---------------------------------------------------------------


def test_demo_without_tesseract_explains_and_reads_with_the_native_reader(
        memory_home, tmp_path, monkeypatch):
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))  # no tesseract binary to find
    res = CliRunner().invoke(main, ["demo", "--turns", "200", "--budget", "8000", "--out",
                                    str(tmp_path / "demo"), "--decoder", "tesseract", "--json"])
    assert res.exit_code == 0, res.output
    assert "apt-get install tesseract-ocr" in res.stderr and "brew install" in res.stderr
    data = json.loads(res.stdout)
    needle = data["needle"]
    assert needle["retrieved"] and needle["decoder"] == "native"
    assert "tesseract" in needle["decoder_missing"] and needle["tier"] == "base"
    assert data["accounting"]["page_ratio"] >= 5 and data["page_files"] >= 1


# -- speed habits: lazy tokenizer, light --help, no Fontconfig noise --------------------------


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=full, timeout=120, check=False)


def test_help_imports_no_heavy_module():
    res = _python("import sys\nfrom optical_memory.cli import main\n"
                  "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                  "print(sorted(m for m in ('numpy', 'skia', 'tiktoken', 'torch', 'PIL')"
                  " if m in sys.modules))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "[]"


def test_search_in_a_fresh_process_leaves_the_tokenizer_unbuilt(tmp_path):
    store = tmp_path / "m.db"
    assert _run("add", "-", "--chat", "--store", store, input=_turns(4)).exit_code == 0
    res = _python(
        "from optical_memory.cli import main\n"
        "from optical_memory.tokens import get_counter\n"
        f"main(['search', 'herons', '--store', {str(store)!r}], standalone_mode=False)\n"
        "print('BUILT' if get_counter()._built is not None else 'LAZY')")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "LAZY"
    assert "Fontconfig" not in res.stderr


def test_no_fontconfig_noise_even_with_a_system_fallback_face(tmp_path):
    src = tmp_path / "cjk.txt"
    src.write_text("Herons 鷺 and 世界 — fallback faces come from the system.\n" * 5)
    res = subprocess.run([sys.executable, "-m", "optical_memory", "render", str(src), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(
                             [str(ROOT), os.environ.get("PYTHONPATH", "")])}, check=False)
    assert res.returncode == 0, res.stderr
    assert "Fontconfig" not in res.stderr, res.stderr
