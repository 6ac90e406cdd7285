"""Passage search, part of the storage suite: every test runs on SQLite and on
PostgreSQL (the ``store`` / ``store_url`` fixtures of ``conftest.py``), so
both backends answer alike.

- the hit of a fact in a document spread over pages is on the page holding
  it, and ``Hit.text`` holds the fact;
- a query of common words prefers the passage with the most of them;
- every script: Chinese words of two characters, names and numbers inside
  sentences, Japanese, Korean, Russian / Greek / German case and diacritic
  folding, Arabic, Hebrew, Devanagari, Thai;
- passages stay in step through paging, re-paging, ``replaces`` and delete;
- a database made before the passage index gets it on opening (migration).
"""
from __future__ import annotations

import itertools
import random
import sqlite3
import urllib.parse
import uuid

import pytest

from optical_memory import OpticalMemory
from optical_memory.render import RenderConfig
from optical_memory.store import NewItem, NewPage, Scope, SQLiteStore
from optical_memory.store.migrations import SQLITE_MIGRATIONS, migrate
from optical_memory.store.records import spans_to_json, text_hash, utc_now
from optical_memory.store.windows import MAX_PASSAGE_CHARS, windows
from optical_memory.types import Span

SMALL = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00"
       b"\x00\x00:~\x9bU\x00\x00\x00\nIDATx\x9cc`\x00\x00\x00\x02\x00\x01H\xaf\xa4q\x00\x00"
       b"\x00\x00IEND\xaeB`\x82")


def item(text: str, kind: str = "document") -> NewItem:
    role = "user" if kind == "turn" else None
    return NewItem(kind=kind, role=role, text=text, text_tokens=len(text.split()))


def page(*spans: tuple[NewItem, int, int], readback: str | None = None) -> NewPage:
    """A page showing ``item.text[start:end]`` of each (item, start, end)."""
    out, pos, parts = [], 0, []
    for it, start, end in spans:
        out.append(Span(it.id, start, end, pos, pos + end - start))
        parts.append((it.text or "")[start:end])
        pos += end - start + 1
    return NewPage(width=1, height=1, font_size=11.0, png=PNG, spans=tuple(out), tier="base",
                   text="\n".join(parts), readback=readback)


def one_each(store, scope: Scope, texts: list[str]) -> list[NewItem]:
    """Each text a stored item on its own page."""
    items = [item(t) for t in texts]
    store.add_items(items, [page((it, 0, len(t))) for it, t in zip(items, texts)], scope=scope)
    return items


FILLER = [
    "The committee reviewed the quarterly figures and approved the revised schedule.",
    "Weather delayed two deliveries, so the warehouse team reorganised the loading bays.",
    "Staff training continued through the spring with sessions on safety and first aid.",
    "A new supplier was chosen for packaging after a comparison of three offers.",
    "The maintenance crew replaced worn belts on the northern conveyor line.",
    "Visitors signed the register at reception and were escorted at all times.",
]


def long_document(needle: str, *, before: int, after: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    head = ("Every code in this handbook is confidential; the code of conduct applies to all "
            "staff. Access badges must be worn. ")
    body = [rng.choice(FILLER) for _ in range(before)] + [needle] + [
        rng.choice(FILLER) for _ in range(after)]
    return head + " ".join(body)


# --------------------------------------------------------------------------
# Pages and passages
# --------------------------------------------------------------------------


def test_fact_on_second_page_is_hit_on_that_page(store_url, uid):
    needle = "The Lindholm depot access code is 4471-K, changed every March."
    text = long_document(needle, before=40, after=10)
    with OpticalMemory(store_url, render_config=SMALL, keep_last=2) as mem:
        added = mem.add_document(text, title="handbook", user_id=uid)
        assert len(added.page_ids) >= 2, "the document must span pages"
        hits = mem.retrieve("Lindholm depot access code", k=3, user_id=uid)
        at = text.index(needle)
        holding = [p.id for p in mem.list_pages(user_id=uid)
                   if any(s.start <= at and at + len(needle) <= s.end for s in p.spans)]
        assert holding and holding[0] != added.page_ids[0], "the fact is on a later page"
        best = hits[0]
        assert best.page_id == holding[0] and best.page is not None
        assert best.text is not None and needle in best.text
        assert text[best.span[0]:best.span[1]].casefold() in {"lindholm", "depot", "access", "code"}
        assert best.span[0] >= text.index(best.text)  # the span is in item coordinates
        assert len({h.page_id for h in hits}) == len(hits), "one hit per page of an item"


def test_common_words_prefer_the_passage_with_most_terms(store, uid):
    scope = Scope(uid)
    parts = ["the code the code the code of the code and the code again. " * 3,
             "The depot access code for the north gate is kept by the manager. ",
             "Nothing here but lunch menus and parking notes. "]
    doc = item("".join(parts))
    cuts = [0, len(parts[0]), len(parts[0]) + len(parts[1]), len(doc.text)]
    pages = [page((doc, cuts[i], cuts[i + 1])) for i in range(3)]
    store.add_items([doc], pages, scope=scope)
    hits = store.search("depot access code", scope, k=5)
    assert [h.page_id for h in hits][:2] == [pages[1].id, pages[0].id]
    assert hits[0].passage == (cuts[1], cuts[2]) and hits[0].text == parts[1]
    assert [doc.text[a:b] for a, b in hits[0].offsets] == ["depot", "access", "code"]


def test_fact_cut_by_a_page_break_is_whole_in_the_first_pages_passage(store, uid):
    scope = Scope(uid)
    needle = "The Osterfeld vault combination is 90210, said the clerk."
    doc = item("Old notes about the harbour. " * 4 + needle + " Later notes follow here.")
    cut = doc.text.index("combination") + 4  # the page breaks inside the fact
    p1, p2 = page((doc, 0, cut)), page((doc, cut, len(doc.text)))
    store.add_items([doc], [p1, p2], scope=scope)
    hits = store.search("Osterfeld vault combination", scope)
    assert hits[0].page_id == p1.id and needle in hits[0].text
    assert hits[0].passage == (0, doc.text.index(needle) + len(needle))
    assert [h.passage for h in hits if h.page_id == p2.id] in ([], [(cut, len(doc.text))])


def test_long_unpaged_item_is_windowed_and_found_whole(store, uid):
    scope = Scope(uid)
    filler = " ".join(FILLER) + " "
    text = filler * 60 + "The spare key sits under the blue flowerpot. " + filler * 5
    it = item(text, "turn")
    store.add_items([it], scope=scope)
    hits = store.search("flowerpot", scope)
    assert len(hits) == 1 and hits[0].page_id is None
    start, end = hits[0].passage
    assert end - start <= MAX_PASSAGE_CHARS and text[start:end] == hits[0].text
    assert "The spare key sits under the blue flowerpot." in hits[0].text
    assert text[slice(*hits[0].offsets[0])] == "flowerpot"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_windows_keep_every_sentence_whole(lang):
    rng = random.Random(1)
    if lang == "en":
        sentences = [" ".join(rng.choice(["alpha", "beta", "gamma", "delta"])
                              for _ in range(rng.randint(3, 40))) + ". " for _ in range(300)]
    else:
        sentences = ["".join(rng.choice("北京大学的学生们") for _ in range(rng.randint(5, 60))) + "。"
                     for _ in range(300)]
    sentences[100] = "x" * 5000 + ". "  # too long for a window: cut with an overlap
    text = "".join(sentences)
    spans = windows(0, len(text), text)
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (a, b), (c, _) in itertools.pairwise(spans):
        assert b - a <= MAX_PASSAGE_CHARS and a < c <= b
    at = 0
    for sentence in sentences:
        if sentence.startswith("x"):
            at += len(sentence)
            continue
        assert any(a <= at and at + len(sentence.strip()) <= b for a, b in spans), sentence
        at += len(sentence)
    assert max(b - a for a, b in spans) <= MAX_PASSAGE_CHARS
    assert len(spans) > len(text) // MAX_PASSAGE_CHARS + 1, "windows of ~200 tokens"


# --------------------------------------------------------------------------
# Every script
# --------------------------------------------------------------------------


ZH = [
    "昨天下午，张伟在仓库门口等了很久，最后决定先回办公室写报告。",
    "王小明的新电话号码是13912345678，他让我们周末再联系。",
    "这份合同的编号为739215，请在本周五之前交给财务部门审核。",
    "我们在北京大学附近找到了一家很安静的咖啡馆。",
    "会议记录显示，项目预算已经超过原计划的百分之二十。",
]


@pytest.mark.parametrize("query, index", [
    ("仓库", 0), ("张伟", 0), ("王小明", 1), ("13912345678", 1), ("电话", 1),
    ("739215", 2), ("编号", 2), ("合同 739215", 2), ("北京", 3), ("咖啡", 3), ("预算", 4),
    ("项目预算已经超过", 4), ("张伟在仓库门口等了很久吗", 0), ("馆", 3),
])
def test_chinese_words_names_and_numbers_inside_sentences(store, uid, query, index):
    scope = Scope(uid)
    items = one_each(store, scope, ZH)
    hits = store.search(query, scope, k=3)
    assert hits and hits[0].item_id == items[index].id, query
    assert hits[0].offsets and hits[0].text == ZH[index]


def test_chinese_hit_offsets_point_at_the_words(store, uid):
    scope = Scope(uid)
    items = one_each(store, scope, ZH)
    hit = store.search("合同 739215", scope)[0]
    assert hit.item_id == items[2].id
    assert [ZH[2][a:b] for a, b in hit.offsets] == ["合同", "739215"]


JA = [
    "東京タワーの近くで、田中さんと午後三時に待ち合わせをしました。",
    "新しいプロジェクトの締め切りは来月の十五日です。",
    "会議室の予約番号は４８２０です。忘れないでください。",
    "ジョン・スミスさんは大阪の支店で働いています。",
]
KO = [
    "어제 서울에서 김민수 씨를 만나 새 프로젝트에 대해 이야기했습니다.",
    "회의실 예약 번호는 5531이고 내일 오전에 확인할 예정입니다.",
    "부산 지점의 매출이 지난달보다 크게 늘었습니다.",
]


@pytest.mark.parametrize("texts, query, index", [
    (JA, "田中", 0), (JA, "東京タワー", 0), (JA, "締め切り", 1), (JA, "4820", 2),
    (JA, "予約番号", 2), (JA, "スミス", 3), (JA, "大阪", 3), (JA, "待ち合わせ", 0),
    (KO, "서울", 0), (KO, "김민수", 0), (KO, "프로젝트", 0), (KO, "5531", 1), (KO, "예약", 1),
    (KO, "부산", 2), (KO, "매출이", 2),
])
def test_japanese_and_korean(store, uid, texts, query, index):
    scope = Scope(uid)
    items = one_each(store, scope, texts)
    hits = store.search(query, scope, k=3)
    assert hits and hits[0].item_id == items[index].id, query
    assert hits[0].offsets


SPACED = [
    "В понедельник Мария Иванова привезла документы в Москву.",
    "Ёлку поставили в центре зала ещё до праздника.",
    "Ο Νίκος ΠΑΠΑΔΟΠΟΥΛΟΣ ταξίδεψε στην Αθήνα την Τετάρτη.",
    "Die Straße vor dem Büro wird nächste Woche gesperrt.",
    "وصل السيد أحمد إلى مطار القاهرة مساء الخميس.",
    "הפגישה עם דוד נקבעה ליום שלישי בירושלים.",
    "राहुल ने कल दिल्ली में नई परियोजना शुरू की।",
    "คุณสมชายเดินทางไปเชียงใหม่เมื่อวันศุกร์",
]


@pytest.mark.parametrize("query, index, found", [
    ("МОСКВУ", 0, "Москву"), ("мария иванова", 0, "Мария"), ("елку", 1, "Ёлку"),
    ("ЕЩЕ", 1, "ещё"), ("παπαδοπουλος", 2, "ΠΑΠΑΔΟΠΟΥΛΟΣ"), ("ΑΘΗΝΑ", 2, "Αθήνα"),
    ("strasse", 3, "Straße"), ("BURO", 3, "Büro"), ("القاهرة", 4, "القاهرة"),
    ("דוד", 5, "דוד"), ("בירושלים", 5, "בירושלים"), ("दिल्ली", 6, "दिल्ली"),
    ("परियोजना", 6, "परियोजना"), ("เชียงใหม่", 7, "เชียงใหม่"), ("สมชาย", 7, "สมชาย"),
])
def test_spaced_scripts_fold_case_and_diacritics(store, uid, query, index, found):
    scope = Scope(uid)
    items = one_each(store, scope, SPACED)
    hits = store.search(query, scope, k=3)
    assert hits and hits[0].item_id == items[index].id, query
    text = SPACED[index]
    assert found in [text[a:b] for a, b in hits[0].offsets], query


# --------------------------------------------------------------------------
# In step with paging, re-paging and delete
# --------------------------------------------------------------------------


def test_passages_follow_compaction_repage_and_delete(store_url, uid):
    with OpticalMemory(store_url, render_config=SMALL, keep_last=1) as mem:
        turns = [{"role": "user", "content": "the walrus named Olaf guards the harbour"},
                 {"role": "assistant", "content": "noted: 仓库的密码是 739215"},
                 {"role": "user", "content": "and the pelican sleeps on the pier"}]
        ids = mem.add(turns, user_id=uid).item_ids
        waiting = mem.retrieve("walrus", user_id=uid)
        assert [h.item_id for h in waiting] == [ids[0]] and waiting[0].page_id is None
        assert waiting[0].text == turns[0]["content"]
        paged = mem.compact(user_id=uid, force=True).page_ids
        assert paged
        for query, index in (("walrus", 0), ("仓库", 1), ("739215", 1)):
            hits = mem.retrieve(query, user_id=uid)
            assert [h.item_id for h in hits] == [ids[index]], query  # no stale whole-item row
            assert hits[0].page_id in paged and hits[0].text == turns[index]["content"]
        deleted = mem.delete(item_ids=[ids[0]], user_id=uid)
        assert deleted.repaged, "the shared page is laid out again"
        assert mem.retrieve("walrus", user_id=uid) == []
        hit = mem.retrieve("仓库", user_id=uid)[0]
        assert hit.item_id == ids[1] and hit.page_id in deleted.repaged
        assert {h.item_id for h in mem.retrieve("pelican", user_id=uid)} == {ids[2]}


def test_replaced_page_items_fall_back_to_whole_item_passages(store, uid):
    scope = Scope(uid)
    a, b = item("alpha walrus text", "turn"), item("beta pelican text", "turn")
    old = page((a, 0, len(a.text)), (b, 0, len(b.text)))
    store.add_items([a, b], [old], scope=scope)
    assert [h.page_id for h in store.search("walrus", scope)] == [old.id]
    new = page((b, 0, len(b.text)))
    store.add_items([], [new], scope=scope, replaces=[old.id])
    walrus = store.search("walrus", scope)
    assert [(h.item_id, h.page_id) for h in walrus] == [(a.id, None)]
    assert [(h.item_id, h.page_id) for h in store.search("pelican", scope)] == [(b.id, new.id)]
    store.delete(scope, item_ids=[b.id])
    assert store.search("pelican", scope) == []
    assert store.search("walrus", scope)[0].item_id == a.id


def test_item_split_over_pages_has_a_passage_per_page(store, uid):
    scope = Scope(uid)
    doc = item("first half mentions the otter. second half mentions the otter too.")
    cut = doc.text.index("second")
    p1, p2 = page((doc, 0, cut)), page((doc, cut, len(doc.text)))
    store.add_items([doc], [p1, p2], scope=scope)
    hits = store.search("otter", scope)
    assert {h.page_id for h in hits} == {p1.id, p2.id}
    assert {h.passage for h in hits} == {(0, cut), (cut, len(doc.text))}
    assert {h.text for h in hits} == {doc.text[:cut], doc.text[cut:]}


def test_readback_passages_keep_text_false(store, uid):
    scope = Scope(uid)
    secret = "門禁密碼是 5521"
    it = NewItem(kind="turn", role="user", text=None, text_tokens=3,
                 content_hash=text_hash(secret))
    pg = NewPage(width=1, height=1, font_size=11.0, png=PNG,
                 spans=(Span(it.id, 0, len(secret), 0, len(secret)),), tier="base",
                 readback="門禁密碼是 5521")
    store.add_items([it], [pg], scope=scope)
    for query in ("密碼", "5521"):
        hits = store.search(query, scope)
        assert [(h.source, h.page_id) for h in hits] == [("page", pg.id)]
    assert store.search("密碼", scope, sources=("item",)) == []
    mem = OpticalMemory(store, keep_text=False)
    hit = mem.retrieve("5521", user_id=uid)[0]
    assert hit.page_id == pg.id and hit.item_id is None and hit.text is None


# --------------------------------------------------------------------------
# The migration indexes databases made before it
# --------------------------------------------------------------------------

OLD_ROWS = ["昨天张伟在仓库等了很久", "the walrus guards the harbour"]


def _fill_old(execute, mark: str, prefix: str, uid: str) -> tuple[list[str], str]:
    """Rows as the 0003 schema held them: two items, the first on a page."""
    ids = [uuid.uuid4().hex for _ in OLD_ROWS]
    now = utc_now()
    for item_id, text in zip(ids, OLD_ROWS):
        execute(f"INSERT INTO {prefix}items (id, user_id, kind, role, text, text_tokens, "
                f"content_hash, created_at) VALUES ({', '.join([mark] * 8)})",
                [item_id, uid, "turn", "user", text, 3, text_hash(text), now])
    page_id = uuid.uuid4().hex
    spans = spans_to_json([Span(ids[0], 0, len(OLD_ROWS[0]), 0, len(OLD_ROWS[0]))])
    execute(f"INSERT INTO {prefix}pages (id, user_id, width, height, font_size, png, text, spans, "
            f"tier, created_at) VALUES ({', '.join([mark] * 10)})",
            [page_id, uid, 1, 1, 11.0, PNG, OLD_ROWS[0], spans, "base", now])
    execute(f"INSERT INTO {prefix}page_items (page_id, item_id) VALUES ({mark}, {mark})",
            [page_id, ids[0]])
    return ids, page_id


def _check_migrated(store, uid: str, ids: list[str], page_id: str) -> None:
    scope = Scope(uid)
    assert [(h.item_id, h.page_id) for h in store.search("仓库", scope)] == [(ids[0], page_id)]
    assert [(h.item_id, h.page_id) for h in store.search("walrus", scope)] == [(ids[1], None)]


def test_migration_indexes_an_old_sqlite_database(tmp_path, uid):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, SQLITE_MIGRATIONS[:3])
    ids, page_id = _fill_old(db.execute, "?", "", uid)
    db.close()
    with SQLiteStore(path) as store:
        assert "0004_passages" in store.migrations_applied()
        _check_migrated(store, uid, ids, page_id)
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'search_fts'").fetchone()[
        0] == 0
    db.close()


def test_migration_indexes_an_old_postgres_database(store_url, uid):
    if not store_url.startswith("postgres"):
        pytest.skip("the PostgreSQL leg")
    import psycopg

    from optical_memory.store.postgres import PostgresStore, libpq_url
    from optical_memory.store.postgres_migrations import POSTGRES_MIGRATIONS, migrate as pg_migrate

    schema = f"om_test_{uid}"
    parts = urllib.parse.urlsplit(libpq_url(store_url))
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    with psycopg.connect(libpq_url(store_url), autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            pg_migrate(conn, POSTGRES_MIGRATIONS[:3])
            ids, page_id = _fill_old(conn.execute, "%s", "om_", uid)
        with PostgresStore(url) as store:
            assert "0004_passages" in store.migrations_applied()
            _check_migrated(store, uid, ids, page_id)
    finally:
        with psycopg.connect(libpq_url(store_url), autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def test_a_hit_prints_short_and_serialises_to_json(tmp_path):
    import json

    from optical_memory import OpticalMemory

    with OpticalMemory(tmp_path / "m.db") as mem:
        mem.add_document("The Lindholm depot access code is 739215. " * 40, user_id="ann")
        hit = mem.retrieve("Lindholm depot", user_id="ann")[0]
    assert hit.page is not None and hit.page.png  # the record keeps its image ...
    assert len(repr(hit)) < 2000 and "png" not in repr(hit)  # ... but repr does not show it
    data = json.loads(json.dumps(hit.to_dict()))
    assert data["page_id"] == hit.page_id and data["scope"]["user_id"] == "ann"
    assert "739215" in data["text"]
