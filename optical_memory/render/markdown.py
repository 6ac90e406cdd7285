"""Light markdown: which style each source line of a document is drawn in.

The markdown source is laid out *verbatim* — ``#`` marks, list bullets, code
fences and table pipes stay visible — so every page maps back to the source
character for character. Only the face changes per line:

- ATX headings (``# ...`` to ``###### ...``)     → bold
- fenced code (```` ``` ```` / ``~~~`` fences and the lines between) → mono
- table lines (first non-blank character ``|``)  → mono, as-is
- everything else (paragraphs, lists, quotes)    → regular
"""
from __future__ import annotations

import re

from .fonts import BOLD, MONO, REGULAR

_FENCE = re.compile(r"[ ]{0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"[ ]{0,3}#{1,6}(?:[ \t]|$)")
_TABLE = re.compile(r"[ \t]*\|")


def document_runs(text: str) -> list[tuple[int, int, int]]:
    """Split a markdown source into ``(style, start, end)`` runs.

    Runs cover ``text`` exactly, in order; each line's end-of-line characters
    belong to the run of that line. Adjacent lines of one style share a run.
    """
    runs: list[tuple[int, int, int]] = []
    fence: str | None = None  # the opening fence while inside a code block
    pos = 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        m = _FENCE.match(body)
        if fence is not None:
            style = MONO
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) \
                    and not body[m.end():].strip():
                fence = None
        elif m:
            style, fence = MONO, m.group(1)
        elif _HEADING.match(body):
            style = BOLD
        elif _TABLE.match(body):
            style = MONO
        else:
            style = REGULAR
        end = pos + len(line)
        if runs and runs[-1][0] == style:
            runs[-1] = (style, runs[-1][1], end)
        else:
            runs.append((style, pos, end))
        pos = end
    return runs
