"""Glyphs outside the reader's character set: found, marked U+FFFD, counted.

What it catches and what it costs (held-out pages of ``benchmarks/reader.py``,
6 per tier): runs of CJK glyphs and glyphs the model doubts are marked; a
lone unknown glyph read confidently as a Latin letter can slip through. It
changes read-back by -0.0001 on fresh pages and -0.0015 at 512² (where blur
widens ink); ``NativeDecoder(unknown=False)`` turns it off.

The shipped weights saw few glyphs outside the set while training and seldom
output the unknown class for them; they read a CJK ideograph as a confident
"t", or two uncertain Latin/Greek letters. Two checks on a line's CTC output
catch those guesses without retraining:

- **width**: every character read covers the frames up to the next one read;
  a character whose span holds much more ink than its own advance (at least
  :data:`EXCESS_EM` of the font's em beyond it, measured in the reader's
  frames) covers a glyph it has no class for. It (and the ink after it)
  becomes ``round(ink / em)`` marks; a space keeps its place before them.
  Expected advances are DejaVu Sans Condensed's, the narrowest face the
  renderer draws (wider faces only make the excess smaller).
- **doubt**: a character read with less than :data:`DOUBT_PROB` probability
  while the unknown class has at least :data:`UNKNOWN_PROB` at the same frame.

The em in frames follows from the crop geometry: crops are ``1 + 2 * V_PAD``
line pitches tall, scaled to the model's height and widened by the recipe's
stretch; the pitch is ``line_spacing`` em (the page's, when its layout is
known; else the memory's default 1.1).
"""
from __future__ import annotations

import functools

import numpy as np

from optical_memory.reader.charset import Codec
from optical_memory.reader.lines import V_PAD

#: A character's span must exceed its advance by this share of an em to hold
#: an unknown glyph (a Latin letter the model dropped is about half an em; an
#: ideograph one em). Chosen on held-out pages: at 0.75 the check marks 3
#: known characters a fresh page and 32 at 512²; at 1.0, 1 and 24.
EXCESS_EM = 1.0
#: ... and that span must be inked over at least this share of an em.
INKED_EM = 0.6
#: "doubt": the winning class below this probability ...
DOUBT_PROB = 0.75
#: ... while the unknown class reaches this probability at the same frame.
UNKNOWN_PROB = 0.05
#: Ink (0..1) above which a frame's column counts as inked.
INK_LEVEL = 0.25
DEFAULT_LINE_SPACING = 1.1


@functools.lru_cache(maxsize=4)
def advances(charset: str, max_space_run: int) -> np.ndarray:
    """Advance width (in em) of every class of the codec: blank 0, unknown 1."""
    from importlib import resources

    from PIL import ImageFont

    codec = Codec(charset, max_space_run)
    size = 200
    path = resources.files("optical_memory.render") / "fonts" / "DejaVuSansCondensed.ttf"
    font = ImageFont.truetype(str(path), size)
    out = np.zeros(codec.num_classes, dtype=np.float64)
    for cid in range(1, codec.num_classes):
        token = codec.token(cid)
        out[cid] = 1.0 if cid == codec.unknown_id else font.getlength(token) / size
    return out


def em_frames(height: int, stretch: float, pool_w: int,
              line_spacing: float = DEFAULT_LINE_SPACING) -> float:
    """Width of one em in the reader's output frames."""
    return height / ((1 + 2 * V_PAD) * line_spacing) * stretch / pool_w


def mark_unknown(ids: np.ndarray, frames: np.ndarray, prob: np.ndarray, p_unknown: np.ndarray,
                 inked: np.ndarray, em: float, adv: np.ndarray, unknown_id: int,
                 space_ids: frozenset[int]) -> np.ndarray:
    """``ids`` (collapsed CTC output of one line, read at ``frames``) with the
    guesses over unknown glyphs replaced by ``unknown_id`` (see the module doc).
    ``prob``/``p_unknown``: each read character's probability and the unknown
    class's at its frame; ``inked``: [T] bool per frame."""
    n = len(ids)
    if n == 0 or not inked.any():
        return ids
    cum = np.concatenate([[0], np.cumsum(inked)])
    last_ink = int(np.nonzero(inked)[0][-1]) + 1
    ends = np.append(frames[1:], max(last_ink, int(frames[-1]) + 1))
    ink_in = cum[ends] - cum[frames]            # inked frames from each read to the next
    excess = ink_in - adv[ids] * em
    wide = (excess >= EXCESS_EM * em) & (ink_in >= INKED_EM * em)
    doubt = (prob < DOUBT_PROB) & (p_unknown >= UNKNOWN_PROB)
    first = int(frames[0])
    lead = int(cum[first] - cum[0])  # ink before the first character read
    if not (wide.any() or doubt.any() or lead >= max(EXCESS_EM, INKED_EM) * em):
        return ids
    out: list[int] = []
    if lead >= max(EXCESS_EM, INKED_EM) * em:
        out += [unknown_id] * max(1, round(lead / em))
    for k in range(n):
        cid = int(ids[k])
        if wide[k]:
            if cid in space_ids:  # the space stays; the glyph after it is unknown
                out.append(cid)
                out += [unknown_id] * max(1, round(float(excess[k]) / em))
            else:
                out += [unknown_id] * max(1, round(float(ink_in[k]) / em))
        elif doubt[k]:
            out.append(unknown_id)
        else:
            out.append(cid)
    return np.asarray(out, dtype=ids.dtype)


__all__ = ["EXCESS_EM", "advances", "em_frames", "mark_unknown"]
