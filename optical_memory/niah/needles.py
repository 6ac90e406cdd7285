"""RULER-style needles: "One of the special magic {type} for {key} is: {value}."

Templates and task shapes follow NVIDIA RULER (``scripts/data/synthetic/
niah.py``): keys are adjective-noun words, values are 7-digit numbers,
words or UUIDs, and a task is one of

==============  ===========================================================
``single``      one key, one value
``multikey``    one queried key among ``distractors`` other keys (RULER's
                multikey: the others are noise needles, not asked for)
``multivalue``  one key holding ``values`` values; all must be recalled
``multiquery``  ``queries`` keys, one value each; all are asked for
==============  ===========================================================

The queried needles of a cell sit back to back at the cell's depth (so the
depth axis means one place in the haystack); distractor needles are spread
evenly over the rest of it. Keys, and word values, are drawn so that none of
their words occurs in the haystack and no two keys share a word: a
read-back or a keyword search can then find them only where they were put.
"""
from __future__ import annotations

import functools
import random
import re
import uuid
from dataclasses import dataclass

from optical_memory.errors import InputError

KINDS = ("single", "multikey", "multivalue", "multiquery")
VALUE_TYPES = ("number", "word", "uuid")

TEMPLATE = "One of the special magic {type} for {key} is: {value}."
QUESTION_ONE = "What is the special magic {type} for {key} mentioned in the provided text?"
QUESTION_ALL = "What are all the special magic {type} for {key} mentioned in the provided text?"
_PLURAL = {"number": "numbers", "word": "words", "uuid": "uuids"}

# Uncommon words (RULER draws from wonderwords' lists; these are fixed here so
# runs are reproducible offline).
ADJECTIVES = (
    "abundant", "amber", "brisk", "crimson", "dapper", "elated", "fervent", "gilded",
    "hushed", "ivory", "jovial", "kindly", "lavish", "mellow", "nimble", "opaline",
    "placid", "quaint", "russet", "sable", "tawny", "umber", "verdant", "wistful",
    "zesty", "briny", "cobalt", "dusky", "frosty", "glossy", "hazel", "jaunty",
)
NOUNS = (
    "anchovy", "badger", "cactus", "dolphin", "egret", "ferret", "gazebo", "hammock",
    "igloo", "jackal", "kettle", "lagoon", "marmot", "nutmeg", "oyster", "pelican",
    "quokka", "radish", "saddle", "thimble", "urchin", "vulture", "walrus", "yak",
    "zeppelin", "bagpipe", "canoe", "dormouse", "flamingo", "gondola", "hedgehog", "kumquat",
)
VALUE_WORDS = (
    "tangerine", "obsidian", "marzipan", "bramble", "periwinkle", "quartzite", "juniper",
    "saffron", "tamarind", "wolfram", "zircon", "gossamer", "halcyon", "lichen", "mistral",
    "nougat", "parsnip", "rhubarb", "sorrel", "turmeric", "vermouth", "wasabi", "yarrow",
    "cardamom", "dulcimer", "ebony", "fennel", "garnet", "heliotrope", "indigo",
)


@dataclass(frozen=True)
class Needle:
    """One needle sentence: ``text`` states that ``key`` holds ``value``."""

    key: str
    value: str
    text: str


@dataclass(frozen=True)
class NeedleSet:
    """The needles of one cell.

    targets:     needles asked for, inserted back to back at the cell's depth.
    distractors: noise needles (other keys), spread over the haystack.
    keys:        the queried keys (one for single/multikey/multivalue).
    question:    RULER's question for the queried keys.
    references:  the values a correct read-back or answer contains.
    """

    kind: str
    value_type: str
    targets: tuple[Needle, ...]
    distractors: tuple[Needle, ...]
    keys: tuple[str, ...]
    question: str

    @property
    def references(self) -> tuple[str, ...]:
        return tuple(n.value for n in self.targets)

    @property
    def block(self) -> str:
        """The target needles as inserted: sentences joined by one space."""
        return " ".join(n.text for n in self.targets)


@functools.lru_cache(maxsize=4)
def _words(text: str) -> frozenset[str]:
    return frozenset(w.casefold() for w in re.findall(r"[^\W_]+", text))


def make_needles(
    kind: str = "single",
    value_type: str = "number",
    *,
    seed: int = 0,
    haystack: str = "",
    distractors: int = 3,
    values: int = 4,
    queries: int = 4,
) -> NeedleSet:
    """Draw the needles of one cell (deterministic in ``seed``).

    ``haystack``: text the keys and values must not occur in (whole words,
    case-insensitive; numbers and UUIDs as substrings). ``distractors`` /
    ``values`` / ``queries`` apply to multikey / multivalue / multiquery.
    """
    if kind not in KINDS:
        raise InputError(f"needle kind must be one of {KINDS} (got {kind!r})")
    if value_type not in VALUE_TYPES:
        raise InputError(f"needle value type must be one of {VALUE_TYPES} (got {value_type!r})")
    for name, n in (("distractors", distractors), ("values", values), ("queries", queries)):
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"{name} must be an int >= 1 (got {n!r})")
    rng = random.Random(f"niah:{seed}:{kind}:{value_type}")
    banned = _words(haystack)
    lowered = haystack.casefold()
    used_words: set[str] = set()

    def key() -> str:
        free_adj = [a for a in ADJECTIVES if a not in banned and a not in used_words]
        free_noun = [n for n in NOUNS if n not in banned and n not in used_words]
        if not free_adj or not free_noun:
            raise InputError("the haystack uses every key word; cannot draw a unique key")
        adj, noun = rng.choice(free_adj), rng.choice(free_noun)
        used_words.update((adj, noun))
        return f"{adj}-{noun}"

    used_values: set[str] = set()

    def value() -> str:
        for _ in range(1000):
            if value_type == "number":
                v = str(rng.randint(1_000_000, 9_999_999))
            elif value_type == "uuid":
                v = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            else:
                v = rng.choice(VALUE_WORDS)
                if v in banned:
                    continue
            if v not in used_values and v.casefold() not in lowered:
                used_values.add(v)
                return v
        raise InputError(f"cannot draw a {value_type} value absent from the haystack")

    vtype = _PLURAL[value_type]

    def needle(k: str) -> Needle:
        v = value()
        return Needle(k, v, TEMPLATE.format(type=vtype, key=k, value=v))

    if kind == "multiquery":
        keys = tuple(key() for _ in range(queries))
        targets = tuple(needle(k) for k in keys)
    else:
        keys = (key(),)
        n = values if kind == "multivalue" else 1
        targets = tuple(needle(keys[0]) for _ in range(n))
    noise = tuple(needle(key()) for _ in range(distractors)) if kind == "multikey" else ()
    if kind == "single":
        question = QUESTION_ONE.format(type=vtype, key=keys[0])
    else:
        question = QUESTION_ALL.format(type=vtype, key=", ".join(keys))
    return NeedleSet(kind, value_type, targets, noise, keys, question)


__all__ = [
    "ADJECTIVES",
    "KINDS",
    "NOUNS",
    "QUESTION_ALL",
    "QUESTION_ONE",
    "TEMPLATE",
    "VALUE_TYPES",
    "VALUE_WORDS",
    "Needle",
    "NeedleSet",
    "make_needles",
]
