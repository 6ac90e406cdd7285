"""Search terms, written once for every backend: how text is folded and cut
into index tokens, how a user query becomes terms, and where a query's words
sit in a passage (for a hit's offsets).

Both stores index the *tokens* made here (SQLite: an FTS5 table with the
``ascii`` tokenizer over the space-joined tokens; PostgreSQL: a ``tsvector``
built from them), so every script behaves the same on both, whatever the
server's locale or SQLite's Unicode tables:

- **Folding** (:func:`fold`): case (``casefold``: ``ß`` → ``ss``, ``Σ``/``ς``
  → ``σ``), compatibility forms (full-width ``７３９`` → ``739``, half-width
  kana) and diacritics (``é`` → ``e``, ``ё`` → ``е``, Arabic harakat, Hebrew
  points), done per grapheme so a folded match maps back to exact source
  characters. Kana voicing marks are kept (``が`` stays ``が``).
- **Words**: runs of letters, digits and the marks inside words (Devanagari
  vowel signs, Thai vowels), as :func:`~optical_memory.store.query.query_phrases`
  splits a query; each is one token.
- **Scripts written without spaces** (Chinese, Japanese, Korean, Thai, Lao,
  Khmer, Myanmar, Yi; :data:`NGRAM_RANGES`): a run of them is indexed as its
  overlapping character *bigrams*, so any substring of two or more
  characters is a phrase of bigrams (a two-character word, a name, a word in
  the middle of a sentence), plus one marked *unigram* per character (at the
  end of the passage's tokens, so phrase positions stay consecutive) for
  one-character queries. Digits and Latin letters inside such a run are words
  of their own, so ``739215`` in ``编号739215已`` is found.

Queries (:func:`query_terms`): whitespace separates query chunks. A chunk of
ordinary words is one phrase (``col:val`` is the phrase "col val"). A chunk
with a CJK run is its phrase (bigrams, in order) and also each of its bigrams
and words on its own, so a whole sentence typed as a query still finds the
passages sharing most of its words (BM25 sums the matches). Every term holds
only letters and digits (or the unigram mark), quoted by the backend: no user
text reaches FTS5 or tsquery syntax.
"""
from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from optical_memory.store.query import (
    MAX_OFFSETS,
    MAX_PHRASE_WORDS,
    MAX_QUERY_PHRASES,
    query_phrases,
)

#: Scripts written without spaces between words: indexed as character n-grams.
NGRAM_RANGES: tuple[tuple[int, int], ...] = (
    (0x0E00, 0x0EFF),  # Thai, Lao
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x2E80, 0x2FDF),  # CJK radicals, Kangxi radicals
    (0x3005, 0x3007),  # 々 〆 〇
    (0x3021, 0x3029),  # Hangzhou numerals
    (0x3031, 0x3035),  # kana repeat marks
    (0x303B, 0x303C),
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul compatibility Jamo
    (0x31A0, 0x31BF),
    (0x31F0, 0x31FF),  # Katakana phonetic extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA000, 0xA4CF),  # Yi
    (0xA960, 0xA97F),  # Hangul Jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, Jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x1B000, 0x1B16F),  # Kana supplement
    (0x20000, 0x2FA1F),  # CJK extensions B-F, compatibility supplement
    (0x30000, 0x323AF),  # CJK extensions G, H
)
#: Marks the unigram tokens (never produced by the word rule: it is punctuation).
UNIGRAM_MARK = "\u00b7"
#: Tokens longer than this (UTF-8 bytes) are not indexed (PostgreSQL's lexeme cap).
MAX_TOKEN_BYTES = 2047
#: Most terms one query becomes (each is one FTS5 phrase / tsquery, and on
#: PostgreSQL one idf count): a pasted novel cannot become a huge query.
MAX_QUERY_TERMS = 64
#: Most characters of one CJK run of a query that make terms.
MAX_NGRAM_QUERY_CHARS = 32
_KANA_VOICING = "\u3099\u309a"


def _class(points: Iterable[int]) -> str:
    """A regex character class body for the code points (as ranges)."""
    out: list[str] = []
    run: list[int] = []
    for cp in sorted(set(points)):
        if run and cp == run[-1] + 1:
            run.append(cp)
            continue
        if run:
            out.append(_range(run[0], run[-1]))
        run = [cp]
    if run:
        out.append(_range(run[0], run[-1]))
    return "".join(out)


def _range(lo: int, hi: int) -> str:
    return re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"


def _ngram_points() -> list[int]:
    """Letters, digits and marks of :data:`NGRAM_RANGES` (punctuation such as
    ``・`` or ``๚`` separates, like a space)."""
    points: list[int] = []
    for lo, hi in NGRAM_RANGES:
        for cp in range(lo, hi + 1):
            cat = unicodedata.category(chr(cp))
            if cat[0] in "LNM" or (cat == "Cn" and hi - lo > 0x1000):
                points.append(cp)  # unassigned in a big ideograph block: a future ideograph
    return points


@dataclass(frozen=True)
class _Patterns:
    ngram: str  # character class body: letters/digits/marks of n-gram scripts
    marks: str  # character class body: every combining mark
    cluster: re.Pattern[str]  # a grapheme for folding: a character and its marks
    token: re.Pattern[str]  # one token's source: an n-gram run, or a word
    ngram_char: re.Pattern[str]


@functools.cache
def _rx() -> _Patterns:
    """The patterns, built on first use (scanning the Unicode tables takes ~30 ms)."""
    ngram = _class(_ngram_points())
    marks = _class(cp for cp in [*range(0x20000), *range(0xE0100, 0xE01F0)]
                   if unicodedata.category(chr(cp))[0] == "M")
    return _Patterns(
        ngram, marks,
        # conjoining vowel / final jamo join the syllable they follow
        re.compile(f"(?s:.)[{marks}\u1160-\u11ff\ud7b0-\ud7ff]*"),
        re.compile(f"(?P<ng>[{ngram}]+)|(?P<w>(?:[^\\W_{ngram}]|[{marks}])+)"),
        re.compile(f"[{ngram}]"),
    )


#: The token pattern on ASCII text: no n-gram script, no combining mark can
#: occur, so a token is a run of letters and digits (the same matches as
#: :func:`_rx`'s pattern, without scanning the Unicode tables for them).
_ASCII_TOKEN = re.compile(r"(?P<ng>(?!))|(?P<w>[A-Za-z0-9]+)")


def _token_rx(folded: str) -> re.Pattern[str]:
    return _ASCII_TOKEN if folded.isascii() else _rx().token


@functools.lru_cache(maxsize=1 << 16)
def _fold_cluster(cluster: str) -> str:
    decomposed = unicodedata.normalize("NFKD", cluster.casefold())
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) or c in _KANA_VOICING)
    return unicodedata.normalize("NFC", kept)


def fold(text: str) -> str:
    """Case-, width- and diacritic-folded ``text`` (see the module doc)."""
    if text.isascii():
        return text.lower()
    return "".join(_fold_cluster(c) for c in _rx().cluster.findall(text))


def fold_map(text: str) -> tuple[str, list[int], list[int]]:
    """``fold(text)`` and, per folded character, the ``[start, end)`` in
    ``text`` of the grapheme it came from."""
    if text.isascii():
        n = len(text)
        return text.lower(), list(range(n)), list(range(1, n + 1))
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for m in _rx().cluster.finditer(text):
        folded = _fold_cluster(m.group())
        parts.append(folded)
        starts += [m.start()] * len(folded)
        ends += [m.end()] * len(folded)
    return "".join(parts), starts, ends


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def _fits(token: str) -> bool:
    return len(token.encode("utf-8", "surrogatepass")) <= MAX_TOKEN_BYTES


def index_tokens(text: str) -> list[str]:
    """The tokens a passage is indexed by, in order (see the module doc)."""
    tokens: list[str] = []
    unigrams: list[str] = []
    for m in _token_rx(folded := fold(text)).finditer(folded):
        run = m.group("ng")
        if run:
            tokens += _bigrams(run)
            unigrams += [UNIGRAM_MARK + c for c in run]
        elif _fits(word := m.group("w")):
            tokens.append(word)
    return tokens + unigrams


@dataclass(frozen=True)
class QueryTerms:
    """A query as search terms.

    terms: each a phrase of index tokens (consecutive in a matching
           passage); any term matches (OR) and BM25 ranks.
    words: the folded words and CJK runs to locate in a hit's text, with
           True for a CJK run (found anywhere) and False for a word (found
           as a whole word).
    """

    terms: tuple[tuple[str, ...], ...]
    words: tuple[tuple[str, bool], ...]

    def __bool__(self) -> bool:
        return bool(self.terms)


def query_terms(query: str) -> QueryTerms:
    """``query`` as :class:`QueryTerms`; empty when it has no word (the same
    rule as :func:`~optical_memory.store.query.query_phrases`, which also
    checks the type). Bounded: at most :data:`MAX_QUERY_PHRASES` chunks, each
    of at most :data:`MAX_PHRASE_WORDS` words, :data:`MAX_QUERY_TERMS` terms."""
    if not query_phrases(query):
        return QueryTerms((), ())
    chunks: list[tuple[list[tuple[str, ...]], list[tuple[str, ...]]]] = []
    words: dict[tuple[str, bool], None] = {}
    for chunk in unicodedata.normalize("NFC", query).split():
        main, bag = _chunk_terms(chunk, words)
        if main and all(main != seen for seen, _ in chunks):
            chunks.append((main, bag))
        if len(chunks) == MAX_QUERY_PHRASES:
            break
    # Round robin over the chunks, phrases first: every chunk keeps its first
    # term however long the others are.
    terms: dict[tuple[str, ...], None] = {}
    for column in (0, 1):
        lists = [c[column] for c in chunks]
        for depth in range(max((len(x) for x in lists), default=0)):
            for x in lists:
                if depth < len(x) and len(terms) < MAX_QUERY_TERMS:
                    terms[x[depth]] = None
    return QueryTerms(tuple(terms), tuple(words))


def _chunk_terms(chunk: str, words: dict[tuple[str, bool], None]
                 ) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """One whitespace-free query chunk: its phrases (a one-character CJK run
    splits the phrase and becomes a unigram term) and, when it holds CJK
    runs, its bigrams and words one by one."""
    main: list[tuple[str, ...]] = []
    bag: list[str] = []
    phrase: list[str] = []
    has_run = False
    for m in list(_token_rx(folded := fold(chunk)).finditer(folded))[:MAX_PHRASE_WORDS]:
        run = m.group("ng")
        if run:
            run = run[:MAX_NGRAM_QUERY_CHARS]
            words[(run, True)] = None
            if len(run) == 1:
                if phrase:
                    main.append(tuple(phrase))
                    phrase = []
                main.append((UNIGRAM_MARK + run,))
                continue
            has_run = True
            grams = _bigrams(run)
            phrase += grams
            bag += grams
        else:
            word = m.group("w")
            if not _fits(word):
                continue
            words[(word, False)] = None
            phrase.append(word)
            bag.append(word)
    if phrase:
        main.append(tuple(phrase))
    extra: list[tuple[str, ...]] = (
        [(t,) for t in dict.fromkeys(bag) if (t,) not in main] if has_run else [])
    return main, extra


def fts5_expression(terms: Sequence[Sequence[str]]) -> str:
    """SQLite FTS5 MATCH string: each term an FTS5 string (a phrase; quotes
    doubled, though tokens hold none), joined by OR."""
    return " OR ".join('"' + " ".join(t).replace('"', '""') + '"' for t in terms)


def _lexeme(token: str) -> str:
    return "'" + token.replace("\\", "\\\\").replace("'", "''") + "'"


def tsquery_literal(term: Sequence[str]) -> str:
    """A ``tsquery`` literal for one term: its tokens quoted, in order (``<->``)."""
    return " <-> ".join(_lexeme(t) for t in term)


#: tsvector limits: highest position, positions kept per lexeme.
MAX_POSITION = 16383
MAX_POSITIONS = 256


def tsvector_literal(tokens: Sequence[str]) -> str:
    """A ``tsvector`` literal of ``tokens`` at positions 1, 2, ... (quoted
    lexemes, so PostgreSQL's parser and locale never re-split them)."""
    positions: dict[str, list[int]] = {}
    for n, token in enumerate(tokens, 1):
        at = positions.setdefault(token, [])
        if len(at) < MAX_POSITIONS:
            at.append(min(n, MAX_POSITION))
    return " ".join(f"{_lexeme(t)}:{','.join(map(str, dict.fromkeys(p)))}"
                    for t, p in positions.items())


# --------------------------------------------------------------------------
# Locating a query's words in a hit's text
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _word_pattern(words: tuple[str, ...], ascii_text: bool = False) -> re.Pattern[str]:
    # a word is whole when no other letter/digit/mark of a spaced script touches it
    # (in ASCII text that is an ASCII letter or digit: no Unicode-table scan)
    edge = "[A-Za-z0-9]" if ascii_text else f"[^\\W_{_rx().ngram}]|[{_rx().marks}]"
    alts = "|".join(map(re.escape, sorted(words, key=len, reverse=True)))
    return re.compile(f"(?<!{edge})(?:{alts})(?!{edge})")


def locate(text: str, query: QueryTerms) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` ranges in ``text`` of the query's words (whole words)
    and CJK runs (anywhere), matched on folded text, mapped back to ``text``,
    sorted, at most :data:`MAX_OFFSETS`."""
    if not text or not query.words:
        return ()
    folded, starts, ends = fold_map(text)
    found: set[tuple[int, int]] = set()
    plain = tuple(w for w, is_run in query.words if not is_run)
    if plain:
        found.update(m.span() for m in _word_pattern(plain, folded.isascii()).finditer(folded))
    runs: set[tuple[int, int]] = set()
    for run, is_run in query.words:
        if is_run:
            # the whole run, else (a sentence typed as a query) its bigrams,
            # merged where they touch into the stretches the text shares
            for piece in [run] if run in folded else _bigrams(run):
                at = folded.find(piece)
                while at != -1 and len(runs) < 4 * MAX_OFFSETS:
                    runs.add((at, at + len(piece)))
                    at = folded.find(piece, at + 1)
    found.update(_merge(sorted(runs)))
    spans = sorted({(starts[a], ends[b - 1]) for a, b in found if b > a})
    return tuple(_drop_nested(spans))[:MAX_OFFSETS]


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans with overlapping ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _drop_nested(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted spans without those inside another (a CJK run inside a longer one)."""
    out: list[tuple[int, int]] = []
    for start, end in spans:
        while out and out[-1][0] == start and out[-1][1] <= end:
            out.pop()
        if out and out[-1][1] >= end:
            continue
        out.append((start, end))
    return out


def has_ngram_script(text: str) -> bool:
    """Whether ``text`` holds a character of an n-gram script."""
    return _rx().ngram_char.search(text) is not None


def token_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Where the (main) index tokens of ``text[start:end]`` come from, unfolded:
    one span per word, per bigram of a CJK run (or its one character)."""
    out: list[tuple[int, int]] = []
    for m in _rx().token.finditer(text, start, end):
        a, b = m.span()
        if m.group("ng") and b - a > 1:
            out += [(i, i + 2) for i in range(a, b - 1)]
        else:
            out.append((a, b))
    return out


__all__ = [
    "MAX_QUERY_TERMS",
    "NGRAM_RANGES",
    "UNIGRAM_MARK",
    "QueryTerms",
    "fold",
    "fold_map",
    "fts5_expression",
    "has_ngram_script",
    "index_tokens",
    "locate",
    "query_terms",
    "token_spans",
    "tsquery_literal",
    "tsvector_literal",
]
