"""Assemble ``benchmarks/RESULTS.md`` from the per-benchmark result files.

Each benchmark script writes its own table to ``benchmarks/results/<name>.md``
(so one can be re-run without re-running the others); this script stitches
them, in pipeline order, into ``benchmarks/RESULTS.md``.

Run: ``python benchmarks/collect.py`` (after any benchmark).
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = [
    ("render_speed", "benchmarks/render_speed.py"),
    ("fidelity", "benchmarks/fidelity.py"),
    ("reader", "benchmarks/reader.py"),
    ("reader_speed", "benchmarks/reader.py --speed-only"),
    ("reader_density", "benchmarks/reader_density.py"),
    ("reader_unshaped", "benchmarks/reader_unshaped.py"),
    ("default_reader", "benchmarks/default_reader.py"),
    ("fidelity_scripts", "benchmarks/fidelity_scripts.py"),
    ("context", "benchmarks/context.py"),
    ("niah", "benchmarks/niah.py"),
    ("tier_methods", "benchmarks/tier_methods.py"),
    ("niah_modes", "benchmarks/niah_modes.py"),
    ("target_ratios", "benchmarks/target_ratios.py"),
    ("baselines", "benchmarks/baselines.py"),
    ("niah_native", "benchmarks/niah_native.py"),
    ("routing", "benchmarks/routing.py"),
    ("retrieval", "benchmarks/retrieval.py"),
    ("paraphrase", "benchmarks/paraphrase.py"),
    ("retrieval_semantic", "benchmarks/retrieval.py --semantic"),
    ("longdoc", "benchmarks/longdoc.py"),
    ("langchain", "integrations/langchain/benchmarks/tokens_per_call.py"),
    ("mcp_startup", "benchmarks/mcp_startup.py"),
    ("reliability", "benchmarks/reliability.py"),
    ("delete_repage", "benchmarks/delete_repage.py"),
    ("cli_speed", "benchmarks/cli_speed.py"),
    ("inspector", "benchmarks/inspector.py"),
    ("encoder_speed_cpu", "benchmarks/encoder_speed.py"),
    ("encoder_speed_cpu_tuned", "benchmarks/encoder_speed.py --tune-malloc"),
    ("encoder_cpu_memory", "benchmarks/encoder_cpu_memory.py"),
    ("encoder_speed_cpu_bf16", "benchmarks/encoder_speed.py --dtype bf16"),
    ("encoder_agreement_cpu_bf16", "benchmarks/encoder_agreement.py --dtype bf16 --attn sdpa --batch 1"),
    ("encoder_speed_cpu_1thread", "benchmarks/encoder_speed.py --threads 1"),
    ("encoder_speed_cuda", "benchmarks/encoder_speed.py --device cuda"),
    ("encoder_speed_cuda_modes", "benchmarks/encoder_speed.py --device cuda --modes tiny,small,large"),
    ("encoder_speed_cuda_compile", "benchmarks/encoder_speed.py --device cuda --compile"),
    ("encoder_speed_cuda_h100", "benchmarks/encoder_speed.py + encoder_agreement.py on an H100"),
    ("attention_kernels_h100", "benchmarks/attention_kernels.py"),
]

INTRO = """# Benchmark results

Measured by the scripts named under each section (this file is assembled by
`benchmarks/collect.py` from `benchmarks/results/*.md`). Unless a section says
otherwise: a 2-core x86-64 machine with no GPU, shared with other jobs while
these ran, so times are pessimistic. Every compression figure names the text
tokenizer, the target's vision-token accounting and the decoder that read the
pixels back.
"""


def demote(md: str) -> str:
    """Shift every heading one level down so sections nest under this file's title."""
    out = []
    fence = False
    for line in md.splitlines():
        if line.startswith("```"):
            fence = not fence
        out.append("#" + line if line.startswith("#") and not fence else line)
    return "\n".join(out).strip() + "\n"


def relink(md: str) -> str:
    """Links written relative to results/ point one folder up; RESULTS.md sits there."""
    return md.replace("](../", "](")


def main() -> None:
    parts = [INTRO]
    seen = set()
    for name, script in ORDER:
        path = HERE / "results" / f"{name}.md"
        seen.add(path.name)
        if not path.exists():
            continue
        parts.append(f"<!-- from {path.relative_to(HERE.parent)}, written by `{script}` -->\n"
                     + relink(demote(path.read_text(encoding="utf-8"))))
    for path in sorted((HERE / "results").glob("*.md")):
        if path.name not in seen:
            parts.append(relink(demote(path.read_text(encoding="utf-8"))))
    text = "\n".join(parts)
    (HERE / "RESULTS.md").write_text(text, encoding="utf-8")
    print(f"wrote {HERE / 'RESULTS.md'} ({len(parts) - 1} sections)")


if __name__ == "__main__":
    main()
