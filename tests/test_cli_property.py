"""Property: whatever the input, a CLI command ends with exit status 0, 1 or
2 and never prints a traceback.

Hypothesis drives click's CliRunner with generated JSONL chat logs (valid
messages, junk JSON, 10k-deep nesting, huge ints, floats where lists are
expected, odd tool-call arguments, non-UTF-8 bytes) and generated flags
(``search -k``, ``context --keep-last/--budget``, ``add --chat``, ``render``,
``decode-page`` / ``delete`` with junk ids, junk scopes). Stores are
in-memory, or one small prepared SQLite file; no command here needs
tesseract (decode-page is only given ids that name no page).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from optical_memory.cli import main

# -- JSONL lines ----------------------------------------------------------------------

HUGE_INTS = ["9223372036854775808", "18446744073709551616", "-9223372036854775809",
             "1" + "0" * 400, "9" * 5000, "1e400", "-1e400", "1.5"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
roles = st.one_of(st.sampled_from(["user", "assistant", "system", "tool", "developer", "function"]),
                  st.text(max_size=10), json_values)
tool_calls = st.one_of(
    st.fixed_dictionaries({"id": st.text(max_size=8), "name": st.text(max_size=8),
                           "arguments": st.one_of(json_values, st.text(max_size=40))}),
    st.fixed_dictionaries({"id": st.text(max_size=8), "type": st.just("function"),
                           "function": st.fixed_dictionaries({
                               "name": st.text(max_size=8),
                               "arguments": st.one_of(json_values, st.text(max_size=40))})}),
    json_values,
)
messages = st.fixed_dictionaries(
    {"role": roles, "content": st.one_of(st.text(max_size=200), json_values)},
    optional={
        "name": st.one_of(st.text(max_size=20), json_values),
        "time": st.one_of(st.text(max_size=20), json_values),
        "tool_calls": st.one_of(st.lists(tool_calls, max_size=3), json_values),
        "tool_call_id": st.one_of(st.text(max_size=8), json_values),
    },
)
valid_messages = st.fixed_dictionaries({
    "role": st.sampled_from(["user", "assistant"]),
    "content": st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                       min_size=1, max_size=200),
})


def _deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw_in_message(raw: str, where: str) -> str:
    """A message with a raw JSON literal (e.g. a 5000-digit int) at ``where``."""
    if where == "args":
        return ('{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "f", '
                f'"arguments": {{"n": {raw}}}}}]}}')
    return f'{{"role": "user", "content": "x", "{where}": {raw}}}'


def _nest(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"k": [value]}
    return value


lines = st.one_of(
    valid_messages.map(json.dumps),
    messages.map(lambda m: json.dumps(m, ensure_ascii=False)),
    json_values.map(json.dumps),
    st.text(max_size=60),
    st.integers(1, 12_000).map(_deep_list),
    st.integers(1, 6_000).map(_deep_object),
    st.builds(_raw_in_message, st.sampled_from(HUGE_INTS),
              st.sampled_from(["content", "role", "name", "time", "tool_calls", "args"])),
    st.builds(lambda m, n: json.dumps({**m, "tool_calls": [{"id": "c", "name": "f",
                                                            "arguments": _nest(n)}]}),
              valid_messages, st.integers(1, 150)),
)


@st.composite
def jsonl(draw) -> bytes:
    shape = draw(st.sampled_from(["valid", "one-bad", "any"]))
    if shape == "any":
        log = draw(st.lists(lines, max_size=6))
    else:  # a good log, or a good log with one hostile line somewhere
        log = [json.dumps(m) for m in draw(st.lists(valid_messages, min_size=1, max_size=12))]
        if shape == "one-bad":
            log.insert(draw(st.integers(0, len(log))), draw(lines))
    body = "\n".join(log)
    data = body.encode("utf-8", "surrogatepass")  # lone surrogates: invalid UTF-8
    if draw(st.integers(0, 9)) == 0:  # sometimes raw junk bytes somewhere
        junk = draw(st.binary(min_size=1, max_size=8))
        at = draw(st.integers(0, len(data)))
        data = data[:at] + junk + data[at:]
    return data


# -- flags and values ---------------------------------------------------------------------

numbers = st.one_of(
    st.integers(1, 200_000).map(str),
    st.integers(-2**70, 2**70).map(str),
    st.integers(0, 50).map(str),
    st.sampled_from(["0", "-1", "1.5", "1e9", "nan", "inf", "", " 3", "0x10", str(2**63),
                     str(2**64), "9" * 5000]),
    st.text(max_size=6),
)
junk_ids = st.one_of(st.text(max_size=40), st.sampled_from(
    ["", "-", "--", "%", "*", "'; DROP TABLE items; --", "0" * 64, "../../etc/passwd", "\x00"]))
scope_values = st.one_of(st.sampled_from(["default", "alice", "", " ", "a" * 10_000]),
                         st.text(max_size=20))


@st.composite
def scope_flags(draw) -> list[str]:
    out: list[str] = []
    for flag in ("--user", "--agent", "--session"):
        if draw(st.integers(0, 5)) == 0:
            out += [flag, draw(scope_values)]
    return out


@st.composite
def cli_calls(draw, shared_store: str, out_dir: str):
    """(argv, stdin bytes or None)."""
    store = draw(st.sampled_from([":memory:", shared_store]))
    kind = draw(st.sampled_from(["add-chat", "add-chat", "add-text", "render", "render", "search",
                                 "context", "decode-page", "delete", "stats"]))
    if kind == "add-chat":
        return ["add", "-", "--chat", "--store", ":memory:", *draw(scope_flags())], draw(jsonl())
    if kind == "add-text":
        argv = ["add", "-", "--store", ":memory:"]
        if draw(st.booleans()):
            argv += ["--title", draw(st.text(max_size=30))]
        return argv, draw(jsonl())
    if kind == "render":
        argv = ["render", "-", "--out", out_dir,
                "--kind", draw(st.sampled_from(["chat", "chat", "text", "document", "auto"]))]
        if draw(st.integers(0, 4)) == 0:
            argv += ["--font-size", draw(st.sampled_from(["0", "-3", "nan", "inf", "1e308", "2",
                                                          "11", "x"]))]
        if draw(st.integers(0, 4)) == 0:
            argv += ["--line-spacing", draw(st.sampled_from(["0", "1", "1.2", "4", "nan", "9"]))]
        if draw(st.integers(0, 5)) == 0:
            argv += ["--target", draw(st.sampled_from(["deepseek-ocr:tiny", "nope", "", "a:b"]))]
        return argv, draw(jsonl())
    if kind == "search":
        argv = ["search", draw(st.text(max_size=40)), "--store", store, *draw(scope_flags())]
        if draw(st.booleans()):
            argv += ["-k", draw(numbers)]
        if draw(st.booleans()):
            argv.append("--json")
        return argv, None
    if kind == "context":
        argv = ["context", "--budget", draw(numbers), "--store", store, *draw(scope_flags())]
        if draw(st.booleans()):
            argv += ["--keep-last", draw(numbers)]
        if draw(st.integers(0, 3)) == 0:
            argv += ["--system", draw(st.text(max_size=50))]
        if draw(st.integers(0, 5)) == 0:
            argv += ["--out", out_dir]
        if draw(st.integers(0, 5)) == 0:
            argv += ["--target", draw(st.sampled_from(["openai:gpt-4o", "nope", ""]))]
        return argv, None
    if kind == "decode-page":
        argv = ["decode-page", draw(junk_ids), "--store", store, *draw(scope_flags())]
        if draw(st.integers(0, 3)) == 0:
            argv += ["--tier", draw(st.text(max_size=10))]
        return argv, None
    if kind == "delete":
        flags = draw(st.lists(st.sampled_from(["--all", "--yes", "--no-repage", "--json"]),
                              max_size=3, unique=True))
        target = ":memory:" if "--all" in flags else store  # keep the shared store intact
        return ["delete", *draw(st.lists(junk_ids, max_size=3)), *flags, "--store", target,
                *draw(scope_flags())], None
    return ["stats", "--store", store, *draw(scope_flags()), "--json"], None


# -- the property ----------------------------------------------------------------------------


def _runner() -> CliRunner:
    try:  # click < 8.2 mixes stderr into output unless told not to
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:
        return CliRunner()


def check(argv: list[str], data: bytes | None) -> None:
    res = _runner().invoke(main, argv, input=data, catch_exceptions=True)
    text = res.stdout + res.stderr
    assert res.exception is None or isinstance(res.exception, SystemExit), \
        f"{argv!r}: {res.exception!r}"
    assert res.exit_code in (0, 1, 2), (argv, res.exit_code, text[-2000:])
    assert "Traceback" not in text, (argv, text[-4000:])


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> tuple[str, str]:
    """A small store holding a paged conversation, and a folder for --out."""
    from optical_memory.conversation import generate_conversation

    root = tmp_path_factory.mktemp("cli-property")
    store = str(root / "memory.db")
    log = root / "chat.jsonl"
    log.write_text("\n".join(json.dumps(m) for m in generate_conversation(tokens=3000, seed=7).messages))
    for argv in (["add", str(log), "--chat", "--store", store], ["compact", "--force", "--store", store]):
        res = CliRunner().invoke(main, argv)
        assert res.exit_code == 0, res.output
    out = root / "out"
    return store, str(out)


def _property(shared: tuple[str, str], max_examples: int):
    store, out = shared
    tried = [0]

    @settings(max_examples=max_examples, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large, HealthCheck.large_base_example])
    @given(call=cli_calls(store, out))
    def run(call):
        tried[0] += 1
        check(*call)

    run()
    count_file = os.environ.get("OPTICAL_MEMORY_CLI_COUNT_FILE")
    if count_file:  # benchmarks/reliability.py reports how many inputs were tried
        Path(count_file).write_text(str(tried[0]))


def test_cli_never_prints_a_traceback(shared):
    _property(shared, 200)


@pytest.mark.slow
def test_cli_never_prints_a_traceback_many(shared):
    _property(shared, int(os.environ.get("OPTICAL_MEMORY_CLI_EXAMPLES", "3000")))


# Fixed cases from issue #15, run every time (hypothesis may not draw them).
ISSUE_CASES = [
    (["search", "x", "-k", str(2**63), "--store", ":memory:"], None),
    (["context", "--budget", "1000", "--keep-last", str(2**63), "--store", ":memory:"], None),
    (["context", "--budget", str(2**63), "--store", ":memory:"], None),
    (["add", "-", "--chat", "--store", ":memory:"],
     b'{"role": "user", "content": "x", "tool_calls": 1.5}\n'),
    (["add", "-", "--chat", "--store", ":memory:"], _deep_list(10_000).encode()),
    (["render", "-", "--kind", "chat", "--out", "{out}"], _deep_list(10_000).encode()),
    (["add", "-", "--chat", "--store", ":memory:"],
     (b'{"role": "assistant", "content": "", "tool_calls": [{"id": "c", "name": "f", '
      b'"arguments": {"1": 2, "2": {"3": [4]}}}]}\n')),
    (["add", "-", "--chat", "--store", ":memory:"], b'{"role": "user", "content": "\xff\xfe"}\n'),
    (["add", "-", "--chat", "--store", ":memory:"], ('{"role": "user", "content": ' + "9" * 5000
                                                      + "}").encode()),
    (["decode-page", "'; DROP TABLE pages; --", "--store", "{store}"], None),
    (["delete", "\x00", "--store", "{store}"], None),
]


@pytest.mark.parametrize(("argv", "data"), ISSUE_CASES, ids=range(len(ISSUE_CASES)))
def test_issue_15_cases(shared, argv, data):
    store, out = shared
    check([a.format(store=store, out=out) for a in argv], data)


def test_shared_store_is_untouched_by_the_property(shared):
    res = CliRunner().invoke(main, ["stats", "--store", shared[0], "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["items"] > 0
    assert not Path(shared[1]).exists() or Path(shared[1]).is_dir()
