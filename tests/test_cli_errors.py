"""CLI error handling (one place, the root group), the one JSONL parser, and
owner-only files: no command prints a traceback unless -v is given."""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from optical_memory.cli import (
    _group,
    codec as cli_codec,
    edit as cli_edit,
    main,
    memory as cli_memory,
)
from optical_memory.cli.files import private_dir, write_private
from optical_memory.errors import InputError

CLI_DIR = Path(cli_memory.__file__).parent


def runner() -> CliRunner:
    try:  # click < 8.2: keep stderr apart so it can be read on its own
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def invoke(*args: str, input: str | bytes | None = None):
    res = runner().invoke(main, list(args), input=input, catch_exceptions=True)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def out(res) -> str:
    return res.stdout + res.stderr


def error_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


def _raiser(exc: BaseException):
    def broken(*args, **kwargs):
        raise exc

    return broken


UNEXPECTED = [
    RecursionError("maximum recursion depth exceeded while decoding a JSON array"),
    OverflowError("Python int too large to convert to C long"),
    TypeError("'<' not supported between instances of 'int' and 'str'"),
    ValueError("Exceeds the limit (4300 digits) for integer string conversion"),
    OSError(28, "No space left on device"),
    MemoryError(),
    KeyError("page"),
    RuntimeError("line one\nline two\n\tline three"),
    AssertionError(),
]


# -- one wrapper, every command ---------------------------------------------------


@pytest.mark.parametrize("exc", UNEXPECTED, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("argv", [
    ("stats", "--store", ":memory:"),
    ("search", "needle", "--store", ":memory:"),
    ("context", "--budget", "1000", "--store", ":memory:"),
    ("delete", "abc", "--store", ":memory:"),
    ("update", "abc", "--text", "x", "--store", ":memory:"),
])
def test_unexpected_errors_are_one_line_exit_1(monkeypatch, exc, argv):
    monkeypatch.setattr(cli_memory, "_open", _raiser(exc))
    monkeypatch.setattr(cli_edit, "open_memory", _raiser(exc))
    res = invoke(*argv)
    assert res.exit_code == 1
    assert "Traceback" not in out(res)
    (line,) = error_lines(res)
    assert line.startswith(f"error: {type(exc).__name__}"), line
    assert len(line) < _group.MAX_MESSAGE_CHARS + 100


@pytest.mark.parametrize("exc", UNEXPECTED[:3], ids=lambda e: type(e).__name__)
def test_verbose_prints_the_traceback(monkeypatch, exc):
    monkeypatch.setattr(cli_memory, "_open", _raiser(exc))
    res = invoke("-v", "stats", "--store", ":memory:")
    assert res.exit_code == 1
    assert "Traceback (most recent call last)" in res.stderr
    assert res.stderr.rstrip().splitlines()[-1].startswith(f"error: {type(exc).__name__}")


def test_long_messages_are_cut(monkeypatch):
    monkeypatch.setattr(cli_memory, "_open", _raiser(ValueError("x" * 1_000_000)))
    res = invoke("stats", "--store", ":memory:")
    (line,) = error_lines(res)
    assert res.exit_code == 1 and "ValueError: xxx" in line
    assert len(line) <= _group.MAX_MESSAGE_CHARS + 100


def test_broken_str_still_names_the_error(monkeypatch):
    class Weird(Exception):
        def __str__(self):
            raise RuntimeError("no")

    monkeypatch.setattr(cli_memory, "_open", _raiser(Weird()))
    res = invoke("stats", "--store", ":memory:")
    assert res.exit_code == 1 and error_lines(res) == ["error: Weird (run with -v for the traceback)"]


def test_typed_errors_name_their_type(monkeypatch):
    monkeypatch.setattr(cli_memory, "_open", _raiser(InputError("keep_last must be at most 9")))
    res = invoke("stats", "--store", ":memory:")
    assert res.exit_code == 1 and "Traceback" not in out(res)
    assert error_lines(res) == ["Error: InputError: keep_last must be at most 9"]


def test_keyboard_interrupt_exits_130(monkeypatch):
    monkeypatch.setattr(cli_memory, "_open", _raiser(KeyboardInterrupt()))
    res = invoke("stats", "--store", ":memory:")
    assert res.exit_code == 130 and "Traceback" not in out(res)
    assert "interrupted" in res.stderr


def test_usage_errors_keep_exit_2():
    for argv in (["search", "x", "-k", str(2**63)], ["context"], ["no-such-command"],
                 ["context", "--budget", "1.5"], ["render", "-"]):
        res = invoke(*argv)
        assert res.exit_code == 2, (argv, out(res))
        assert "Traceback" not in out(res)


def test_codec_and_niah_commands_are_covered_too(monkeypatch, tmp_path):
    from optical_memory.render import Renderer

    monkeypatch.setattr(Renderer, "layout", _raiser(OverflowError("boom")))
    res = invoke("render", "-", "--out", str(tmp_path / "o"), input="hello")
    assert res.exit_code == 1 and error_lines(res)[-1].startswith("error: OverflowError: boom")

    from optical_memory import niah

    monkeypatch.setattr(niah, "load_results", _raiser(RecursionError("deep")))  # imported per call
    res = invoke("niah", "plot", str(tmp_path))
    assert res.exit_code == 1 and "Traceback" not in out(res)
    assert error_lines(res) == ["error: RecursionError: deep (run with -v for the traceback)"]


def test_no_duplicate_error_wrappers():
    for path in CLI_DIR.glob("*.py"):
        src = path.read_text()
        assert "def _errors" not in src and "def user_errors" not in src, path.name
        assert "@_errors" not in src and "@user_errors" not in src, path.name


# -- real hostile inputs (whatever the library does, the CLI stays clean) -------------


DEEP = "[" * 10_000 + "]" * 10_000
HOSTILE_LINES = [
    DEEP,
    '{"a":' * 5_000 + "1" + "}" * 5_000,
    '{"role": "user", "content": "x", "tool_calls": 1.5}',
    ('{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "f", '
     '"arguments": {"1": {"2": [3]}}}]}'),
    '{"role": "user", "content": ' + "9" * 5000 + "}",
    '{"role": "user", "content": "x", "time": ' + "9" * 400 + "}",
    '{"role": "user", "content": "x", "name": {"k": 1}}',
    '{"role": 5, "content": "x"}',
    "[1, 2, 3]",
    "not json at all",
]


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
@pytest.mark.parametrize("command", ["add", "render"])
def test_hostile_chat_lines_are_clean(tmp_path, command, line):
    log = tmp_path / "chat.jsonl"
    log.write_text('{"role": "user", "content": "hello"}\n' + line + "\n")
    argv = (["add", str(log), "--chat", "--store", ":memory:"] if command == "add"
            else ["render", str(log), "--out", str(tmp_path / "pages")])
    res = invoke(*argv)
    assert res.exit_code in (0, 1), out(res)
    assert "Traceback" not in out(res)
    if res.exit_code == 1:
        assert len(error_lines(res)) == 1, res.stderr


def test_huge_numbers_are_clean():
    for argv in (["context", "--budget", "1000", "--keep-last", str(2**63), "--store", ":memory:"],
                 ["context", "--budget", str(10**30), "--store", ":memory:"],
                 ["search", "x", "-k", str(10**30), "--store", ":memory:"]):
        res = invoke(*argv)
        assert res.exit_code in (0, 1, 2) and "Traceback" not in out(res), (argv, out(res))


# -- one JSONL parser -----------------------------------------------------------------


def test_cli_has_no_jsonl_parser_of_its_own():
    for path in CLI_DIR.glob("*.py"):
        assert "json.loads" not in path.read_text(), f"{path.name} parses JSON itself"


def test_both_chat_readers_use_the_library_parser(monkeypatch):
    from optical_memory import ingest

    calls = []
    real = ingest.read_chat_log

    def spy(text, source):
        calls.append(source)
        return real(text, source)

    monkeypatch.setattr(ingest, "read_chat_log", spy)
    text = '{"role": "user", "content": "hi"}\n'
    assert cli_memory._read_chat_log(text, "a.jsonl")[0] == [{"role": "user", "content": "hi"}]
    (turn,) = cli_codec._chat_items(text, "b.jsonl")
    assert (turn.role, turn.content) == ("user", "hi")
    assert calls == ["a.jsonl", "b.jsonl"]


@pytest.mark.parametrize(("lines", "says"), [
    (['{"role": "user", "content": "ok"}', '{"role": "user"}'], "chat.jsonl:2: expected"),
    (['{"role": "user", "content": "ok"}', "", '{"content": "x", "role": 3}'],
     "chat.jsonl:3: expected"),
    (['{"role": "user", "content": "ok"}', "{nope"], "chat.jsonl:2: not a JSON"),
    (['"just a string"'], "chat.jsonl:1: expected"),
    (['{"role": "user", "content": "x", "name": 5}'], "chat.jsonl:1: \"name\""),
    (["", "  "], "no messages"),
])
def test_render_chat_errors_name_file_and_line(tmp_path, lines, says):
    log = tmp_path / "chat.jsonl"
    log.write_text("\n".join(lines) + "\n")
    res = invoke("render", str(log), "--out", str(tmp_path / "p"))
    assert res.exit_code == 1 and "Traceback" not in out(res)
    assert says in res.stderr, res.stderr


def test_add_chat_errors_name_file_and_line(tmp_path):
    log = tmp_path / "chat.jsonl"
    log.write_text('{"role": "user", "content": "ok"}\n[1]\n')
    res = invoke("add", str(log), "--chat", "--store", ":memory:")
    assert res.exit_code == 1 and f"{log}:2: expected a message object" in res.stderr


def test_render_chat_numeric_time_is_a_label(tmp_path):
    log = tmp_path / "chat.jsonl"
    log.write_text(json.dumps({"role": "user", "content": "hi", "time": 1700000000}) + "\n")
    (turn,) = cli_codec._chat_items(log.read_text(), str(log))
    assert turn.time == "1700000000" and "1700000000" in turn.label


# -- owner-only files ------------------------------------------------------------------


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")


@posix_only
def test_private_dir_and_write_private(tmp_path, umask_022):
    folder = private_dir(tmp_path / "a" / "b" / "c")
    for d in (tmp_path / "a", tmp_path / "a" / "b", folder):
        assert _mode(d) == 0o700, d
    f = write_private(folder / "x.png", b"data")
    assert _mode(f) == 0o600 and f.read_bytes() == b"data"
    loose = folder / "old.png"
    loose.write_bytes(b"old contents that are longer")
    os.chmod(loose, 0o644)
    write_private(loose, b"new")
    assert _mode(loose) == 0o600 and loose.read_bytes() == b"new"


@posix_only
def test_existing_folder_is_left_alone(tmp_path, umask_022):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    assert private_dir(shared) == shared and _mode(shared) == 0o755


@posix_only
def test_write_private_does_not_follow_symlinks(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "link.png").symlink_to(victim)
    with pytest.raises(OSError):
        write_private(tmp_path / "link.png", b"overwrite")
    assert victim.read_bytes() == b"keep"


def test_private_dir_with_a_file_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OSError):
        private_dir(tmp_path / "file")
    res = invoke("render", "-", "--out", str(tmp_path / "file"), input="hello world")
    assert res.exit_code in (1, 2) and "Traceback" not in out(res)


@posix_only
def test_render_out_is_owner_only(tmp_path, umask_022):
    res = invoke("render", "-", "--out", str(tmp_path / "new" / "pages"), "--json",
                 input="Some text to render onto a page.\n" * 20)
    assert res.exit_code == 0, out(res)
    pages = [Path(r["file"]) for r in json.loads(res.stdout)["pages"]]
    assert pages and all(_mode(p) == 0o600 for p in pages)
    assert _mode(tmp_path / "new") == _mode(tmp_path / "new" / "pages") == 0o700


@posix_only
def test_context_out_is_owner_only(tmp_path, umask_022):
    from optical_memory.conversation import generate_conversation

    store = str(tmp_path / "m.db")
    log = tmp_path / "chat.jsonl"
    conv = generate_conversation(tokens=4000, seed=1)
    log.write_text("\n".join(json.dumps(m) for m in conv.messages) + "\n")
    res = invoke("add", str(log), "--chat", "--store", store)
    assert res.exit_code == 0, out(res)
    assert invoke("compact", "--force", "--store", store).exit_code == 0
    res = invoke("context", "--budget", "50000", "--store", store, "--out",
                 str(tmp_path / "ctx"), "--json")
    assert res.exit_code == 0, out(res)
    files = [Path(p) for p in json.loads(res.stdout)["page_files"]]
    assert files and all(_mode(p) == 0o600 for p in files)
    assert _mode(tmp_path / "ctx") == 0o700


def test_messages_are_one_line():
    assert "\n" not in _group.describe(RuntimeError("a\nb\r\nc"))
    assert _group.describe(MemoryError()) == "MemoryError"
    assert re.fullmatch(r"ValueError: x+…", _group.describe(ValueError("x" * 10_000)))
