"""CLI codec commands (render, decode, targets) through click's CliRunner."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from optical_memory.cli import main

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. Optical memory keeps older turns "
    "of a conversation as page images, which a vision model reads with far fewer "
    "tokens than the text they show, and every page can be read back to text."
)


def _walk(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _walk(cmd, (*prefix, name))


def test_every_command_has_help():
    runner = CliRunner()
    for path, cmd in _walk(main):
        assert cmd.help, f"command {' '.join(path)} has no help text"
        res = runner.invoke(main, [*path, "--help"])
        assert res.exit_code == 0, res.output
        assert "Usage:" in res.output


def test_render_writes_pages_and_table(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(PARAGRAPH * 40)
    out = tmp_path / "pages"
    res = CliRunner().invoke(main, ["render", str(src), "--target", "deepseek-ocr:base",
                                    "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == data["summary"]["pages"] >= 1
    assert pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert data["summary"]["target"] == "deepseek-ocr:base"
    assert data["summary"]["tokenizer"] == "o200k_base"
    assert all(p["vision_tokens"] == 273 for p in data["pages"])
    # the pages hold every source character, none twice
    assert sum(p["chars"] for p in data["pages"]) == len(PARAGRAPH * 40)
    assert data["summary"]["ratio"] == pytest.approx(
        data["summary"]["text_tokens"] / data["summary"]["vision_tokens"], abs=0.01)


def test_render_dense_prose_layout_flags(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text(PARAGRAPH * 200)
    runs = {}
    # (the baseline names its spacing and hinting: the default layout is already dense)
    for name, extra in {"default": ["--font-size", "11", "--line-spacing", "1.2",
                                    "--hinting", "normal"],
                        "dense": ["--font-size", "11", "--line-spacing", "1.1",
                                  "--hinting", "slight", "--newline-mode", "marker"]}.items():
        res = CliRunner().invoke(main, ["render", str(src), "--out", str(tmp_path / name),
                                        "--json", *extra])
        assert res.exit_code == 0, res.output
        runs[name] = json.loads(res.stdout)
    # tighter lines and fractional advances put more text on the first page
    assert runs["dense"]["pages"][0]["chars"] > runs["default"]["pages"][0]["chars"] * 1.05
    res = CliRunner().invoke(main, ["render", str(src), "--out", str(tmp_path / "x"),
                                    "--hinting", "medium"])
    assert res.exit_code != 0 and "medium" in res.output


def test_render_human_table_and_stdin(tmp_path):
    res = CliRunner().invoke(main, ["render", "-", "--target", "deepseek-ocr:tiny",
                                    "--out", str(tmp_path)], input=PARAGRAPH)
    assert res.exit_code == 0, res.output
    assert "total" in res.output and "deepseek-ocr:tiny" in res.output
    assert (tmp_path / "page-0001.png").exists()


@pytest.mark.parametrize("args,needle", [
    (["render", "{missing}", "--out", "{out}"], "no such file"),
    (["render", "{empty}", "--out", "{out}"], "EmptyInputError"),
    (["render", "{binary}", "--out", "{out}"], "not UTF-8"),
    (["render", "{text}", "--target", "nope", "--out", "{out}"], "unknown"),
    (["render", "{badchat}", "--out", "{out}"], "expected"),
])
def test_render_user_errors_are_clean(tmp_path, args, needle):
    files = {
        "missing": tmp_path / "missing.txt",
        "empty": tmp_path / "empty.txt",
        "binary": tmp_path / "blob.bin",
        "text": tmp_path / "ok.txt",
        "badchat": tmp_path / "chat.jsonl",
        "out": tmp_path / "out",
    }
    files["empty"].write_text("  \n\n ")
    files["binary"].write_bytes(b"\xff\xfe\x00\x81" * 10)
    files["text"].write_text(PARAGRAPH)
    files["badchat"].write_text('{"role": "user"}\n')
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in args]
    res = CliRunner().invoke(main, argv)
    assert res.exit_code != 0
    assert needle.lower() in res.output.lower(), res.output
    assert "Traceback" not in res.output


def test_render_chat_jsonl(tmp_path):
    log = tmp_path / "chat.jsonl"
    log.write_text("\n".join(json.dumps(m) for m in [
        {"role": "user", "content": "What is the capital of France?", "name": "ann"},
        {"role": "assistant", "content": "Paris."},
    ]))
    res = CliRunner().invoke(main, ["render", str(log), "--out", str(tmp_path / "p"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["summary"]["pages"] == 1


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr not installed")
def test_render_then_decode_round_trip(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text(PARAGRAPH)
    CliRunner().invoke(main, ["render", str(src), "--out", str(tmp_path / "p"), "--font-size", "14"],
                       catch_exceptions=False)
    res = CliRunner().invoke(main, ["decode", str(tmp_path / "p" / "page-0001.png"),
                                    "--reference", str(src), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["precision"] >= 0.98
    assert "quick brown fox" in data["pages"][0]["text"]


def test_decode_missing_image_is_clean(tmp_path):
    res = CliRunner().invoke(main, ["decode", str(tmp_path / "none.png")])
    assert res.exit_code != 0 and "no such image" in res.output


def test_targets_json():
    res = CliRunner().invoke(main, ["targets", "--json"])
    assert res.exit_code == 0
    rows = {r["target"]: r for r in json.loads(res.output)}
    assert rows["deepseek-ocr:base"]["tokens_per_page"] == 273
    assert rows["openai:gpt-4o"]["tokens_per_page"] == 765
