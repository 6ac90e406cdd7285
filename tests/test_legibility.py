"""Aging that keeps pages legible: the floor, the write-time gate, the
rendition's recorded method and read-back, and accounting that states it."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from optical_memory import OpticalMemory
from optical_memory.age import AgePolicy, Legibility, Tier, rendition_meta, resample_png
from optical_memory.age.legibility import calibrated_readback, tier_method, tier_methods
from optical_memory.age.methods import METHODS, make_tier_page, resample_pixels
from optical_memory.age.renditions import rendition_png
from optical_memory.cli import main
from optical_memory.context.budget import ContextPage, build_context
from optical_memory.decode import DecodeResult, coerce_image, register_decoder
from optical_memory.errors import ConfigError
from optical_memory.render import RenderConfig, Renderer

CFG = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker")
# ages in items: the newest document is base, the one before small, older tiny
TIERS = (Tier("base", 0, 1.0), Tier("small", 1, 0.625), Tier("tiny", None, 0.5))
WORDS = ["amber", "orchard", "vault", "tamarind", "quartz", "lantern", "meadow", "harbour", "signal", "copper"]
DOCS = [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(40)) for i in range(3)]
#: what the "sighted" decoder reads: each document's text while the image is
#: at least 320 px wide (base 512, small 320), nothing below (tiny 256)
SEEN: dict[str, str] = {}


class SightedDecoder:
    """Reads the page's text back exactly at >= 320 px, nothing smaller."""

    name = "sighted"

    def decode(self, image) -> DecodeResult:
        img = coerce_image(image)
        text = SEEN.get("text", "") if img.size[0] >= 320 else ""
        return DecodeResult(text=text, decoder=self.name, seconds=0.0, meta={})


register_decoder("sighted", SightedDecoder)


def _memory(tmp_path, **aging) -> OpticalMemory:
    return OpticalMemory(tmp_path / "m.db", render_config=CFG, decoder="sighted",
                         aging=AgePolicy(TIERS, **aging), keep_last=0)


def _add_docs(mem: OpticalMemory) -> list[str]:
    ids = []
    for doc in DOCS:
        SEEN["text"] = doc  # the decoder reads the page being written
        ids += mem.add_document(doc, user_id="u").page_ids
    mem.compact(user_id="u")
    return ids


def test_policy_checks_mode_and_floor():
    assert AgePolicy().mode == "legible" and AgePolicy().min_readback == 0.95
    with pytest.raises(ConfigError, match="mode"):
        AgePolicy(mode="forget")
    for bad in (0, 1.5, True, "0.9"):
        with pytest.raises(ConfigError, match="min_readback"):
            AgePolicy(min_readback=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="verify"):
        AgePolicy(verify=1)  # type: ignore[arg-type]


def test_verify_measures_every_tier_and_legible_mode_stops_above_the_floor(tmp_path):
    with _memory(tmp_path, verify=True) as mem:
        first, second, third = _add_docs(mem)
        pages = {p.id: p for p in mem.list_pages(user_id="u")}
        rb = pages[first].meta["readback"]
        assert rb["reader"] == "sighted"
        assert rb["tiers"] == {"base": 1.0, "small": 1.0, "tiny": 0.0}
        assert rb["methods"]["small"] == tier_method("sighted", 0.625)
        # its age calls for tiny, where it would no longer read back: it stops at small
        assert pages[first].tier == "small" and pages[second].tier == "small"
        assert pages[third].tier == "base"
        # the rendition records how it was made and what was measured on it
        meta = rendition_meta(mem.tier_png(first, "small", user_id="u"))
        assert meta == {"method": "lanczos", "readback": 1.0, "reader": "sighted"}
        acc = mem.context(20_000, user_id="u").accounting
        assert acc.per_tier["small"].readback == 1.0
        assert acc.per_tier["small"].readback_source == "measured"
        assert acc.legible.pages == 3 and acc.faded.pages == 0
        assert any(r[0].startswith("of which legible (read-back ≥ 0.95)") for r in acc.rows())


def test_fade_mode_shrinks_regardless_and_the_accounting_says_what_is_lost(tmp_path):
    with _memory(tmp_path, verify=True, mode="fade") as mem:
        first, _, third = _add_docs(mem)
        tiers = {p.id: p.tier for p in mem.list_pages(user_id="u")}
        assert tiers[first] == "tiny" and tiers[third] == "base"
        acc = mem.context(20_000, user_id="u").accounting
        assert acc.per_tier["tiny"].readback == 0.0
        assert acc.faded.pages == 1 and acc.faded.text_tokens == acc.per_tier["tiny"].text_tokens
        assert acc.legible.pages == 2
        row = next(r for r in acc.rows() if r[0] == "pages, tier tiny")
        assert row[5] == "0.000 (measured)"
        d = acc.to_dict()
        assert d["faded"]["pages"] == 1 and d["per_tier"]["tiny"]["readback_source"] == "measured"


def test_unknown_legibility_keeps_pages_fresh(tmp_path):
    """No measurement and no calibration for the decoder: legible mode does not shrink."""
    assert calibrated_readback("sighted", 0.625) is None
    with _memory(tmp_path) as mem:
        _add_docs(mem)
        pages = mem.list_pages(user_id="u")
        assert {p.tier for p in pages} == {"base"}
        assert all("readback" not in p.meta for p in pages)
        acc = mem.context(20_000, user_id="u").accounting
        assert acc.per_tier["base"].readback is None and acc.faded.pages == 3
        assert next(r for r in acc.rows() if r[0] == "pages, tier base")[5] == "?"


def test_calibrated_readback_decides_without_a_measurement():
    """The shipped tier calibration: a floor below a tier's figure lets a page
    move there, one above it does not."""
    data = tier_methods()
    assert data["choice"], "optical_memory/data/tier_methods.json ships the measured choice"
    for decoder, by_side in data["choice"].items():
        for entry in by_side.values():
            assert entry["method"] in ("master", "lanczos", "area", "area-sharpen")
            got = calibrated_readback(decoder, entry["scale"])
            assert got == entry["mean_precision"]
    small = calibrated_readback("native", 0.625)
    assert small is not None
    low = Legibility(AgePolicy(min_readback=small), None, "native")
    high = Legibility(AgePolicy(min_readback=min(1.0, small + 1e-3)), None, "native")
    assert low.allowed({}, "base", "small") == "small"
    assert high.allowed({}, "base", "small") == "base"
    assert low.readback({}, "small").source == "calibrated"
    fade = Legibility(AgePolicy(mode="fade", min_readback=1.0), None, "native")
    assert fade.allowed({}, "base", "tiny") == "tiny"


def test_renditions_record_their_method_and_old_ones_read_as_lanczos():
    page = Renderer(CFG).render_text(DOCS[0])[0]
    master = page.to_png()
    plain = resample_png(master, (320, 320))
    assert rendition_meta(plain) == {"method": "lanczos"}
    made = rendition_png(master, (320, 320), "lanczos", {"readback": 0.9, "reader": "x"})
    assert rendition_meta(made) == {"method": "lanczos", "readback": 0.9, "reader": "x"}
    # same pixels as the plain Lanczos resample: only the recorded meta differs
    assert (np.asarray(Image.open(io.BytesIO(made))) ==
            np.asarray(Image.open(io.BytesIO(plain)))).all()
    with pytest.raises(ConfigError):
        resample_pixels(page.pixels, (320, 320), "reflow")


def test_every_method_makes_an_image_of_the_tier_size():
    r = Renderer(CFG)
    from optical_memory.render.config import RenderItem

    item = RenderItem("d", "text", DOCS[0])
    pl = r.layout([item])[0]
    for m in ("master", *METHODS):
        tp = make_tier_page(pl, CFG, (320, 320), m, {"d": item})
        want = (512, 512) if m == "master" else (320, 320)
        assert (tp.page.width, tp.page.height) == want
        assert tp.page.pixels.min() < 128  # something is drawn
        assert not tp.overflow


def test_build_context_splits_legible_and_faded():
    pages = [ContextPage("a", "base", 1024, 1024, 273, 3000, ("i1",), readback=0.99,
                         readback_source="measured"),
             ContextPage("b", "tiny", 512, 512, 73, 2000, ("i2",), readback=0.6,
                         readback_source="calibrated")]
    ctx = build_context(budget_tokens=10_000, system=None, system_tokens=0, turns=[],
                        pages=pages, count_tokens=lambda s: len(s.split()),
                        history_text_tokens=5000, tokenizer="t", target="x", decoder="d",
                        min_readback=0.95)
    acc = ctx.accounting
    assert (acc.legible.pages, acc.legible.text_tokens, acc.legible.vision_tokens) == (1, 3000, 273)
    assert (acc.faded.pages, acc.faded.text_tokens, acc.faded.vision_tokens) == (1, 2000, 73)
    assert acc.per_tier["tiny"].readback == pytest.approx(0.6)
    assert all(len(r) == 6 for r in acc.rows())


def test_cli_age_options_and_tiers_table(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTICAL_MEMORY_HOME", str(tmp_path))
    runner = CliRunner()
    out = runner.invoke(main, ["tiers", "--no-decode", "--json", "--decoder", "native"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert [r["tier"] for r in rows] == ["base", "small", "tiny"]
    assert all(r["calibrated"] is not None for r in rows)
    assert rows[1]["method"] == tier_method("native", 0.625)
    bad = runner.invoke(main, ["tiers", "--no-decode", "--age-mode", "forget"])
    assert bad.exit_code != 0
    store = str(tmp_path / "cli.db")
    doc = tmp_path / "doc.txt"
    doc.write_text(DOCS[1], encoding="utf-8")
    SEEN["text"] = DOCS[1]
    res = runner.invoke(main, ["add", str(doc), "--store", store, "--decoder", "sighted",
                               "--verify", "--age-mode", "fade", "--min-readback", "0.9"])
    assert res.exit_code == 0, res.output
    with OpticalMemory(store) as mem:
        (page,) = mem.list_pages()
        assert page.meta["readback"]["reader"] == "sighted"
        # a 1024² page: every tier is >= 320 px, so the sighted reader reads them all
        assert set(page.meta["readback"]["tiers"]) == {"base", "small", "tiny"}
        assert min(page.meta["readback"]["tiers"].values()) > 0.9


def test_niah_legible_mode_stops_a_page_at_its_last_legible_tier():
    from optical_memory.niah.modes import legible_cells, shown_counts

    def cell(tier, prec, score, depth=0.0):
        return {"haystack": "h", "context_length": 1000, "depth_percent": depth, "tier": tier,
                "readback_precision": prec, "score": score}

    cells = [cell("base", 0.99, 1.0), cell("small", 0.96, 1.0), cell("tiny", 0.90, 0.0),
             # a page failing small stays at base even if tiny read better
             cell("base", 0.99, 1.0, 50.0), cell("small", 0.90, 0.0, 50.0),
             cell("tiny", 0.97, 1.0, 50.0)]
    leg = legible_cells(cells, 0.95)
    shown = {(c["depth_percent"], c["tier"]): c["shown_tier"] for c in leg}
    assert shown == {(0.0, "base"): "base", (0.0, "small"): "small", (0.0, "tiny"): "small",
                     (50.0, "base"): "base", (50.0, "small"): "base", (50.0, "tiny"): "base"}
    assert all(c["score"] == 1.0 for c in leg)
    assert shown_counts(leg)["tiny"] == {"small": 1, "base": 1}


def test_decode_reference_scores_marker_pages_by_the_memory_rule():
    """`decode --reference` against the source file: a marker-mode page's
    read-back scores as the memory scores it against the page's own text."""
    from optical_memory.decode import precision
    from optical_memory.decode.metrics import source_precision
    from optical_memory.render import NEWLINE_MARKER

    source = "def f(x):\n    return x + 1\n\nprint(f(2))\n"
    page = Renderer(RenderConfig(width=512, height=512, font_size=14, newline_mode="marker"))
    text = page.render_text(source)[0].text
    read = text.replace(NEWLINE_MARKER, NEWLINE_MARKER + " ")  # a reader's spacing
    assert source_precision(source, read) == precision(text, read, marker=NEWLINE_MARKER) == 1.0
    assert precision(source, read) < 0.95  # the old rule counted every marker as an error
    # a break-mode page (no marker read) is scored as before
    assert source_precision(source, "def f(x): return x + 1 print(f(2))") == 1.0


def test_calibration_speaks_for_latin_pages_only():
    """A Chinese page has no calibrated read-back: legible mode keeps it fresh."""
    leg = Legibility(AgePolicy(min_readback=0.5), None, "native")
    latin = {"scripts": {"latin": 0.97, "cyrillic": 0.03}}
    chinese = {"scripts": {"han": 0.8, "latin": 0.2}}
    assert leg.readback(latin, "tiny").value == calibrated_readback("native", 0.5)
    assert leg.readback({}, "tiny").value is not None  # no scripts recorded: read as Latin
    assert leg.readback(chinese, "tiny").value is None
    assert leg.allowed(latin, "base", "tiny") == "tiny"
    assert leg.allowed(chinese, "base", "tiny") == "base"
    measured = {**chinese, "readback": {"reader": "native", "tiers": {"small": 0.99}}}
    assert leg.allowed(measured, "base", "tiny") == "small"  # measured wins, tiny unknown
    # the calibration is English: a Latin page with many accented letters has none
    from optical_memory.age.legibility import ACCENTED_SHARE
    from optical_memory.scripts import accented_share

    czech = "Příliš žluťoučký kůň úpěl ďábelské ódy a pak šel spát do stáje."
    assert accented_share("plain English text") == 0.0
    assert accented_share(czech) >= ACCENTED_SHARE > accented_share(
        "Die Einstellungen werden gespeichert, sobald Sie das Fenster schließen.")
    heavy = {"scripts": {"latin": 1.0}, "accented": accented_share(czech)}
    assert leg.readback(heavy, "tiny").value is None
    assert leg.allowed(heavy, "base", "tiny") == "base"
    assert leg.allowed({"scripts": {"latin": 1.0}, "accented": 0.013}, "base", "tiny") == "tiny"


def test_default_memory_ages_latin_pages_legibly_and_keeps_russian_fresh(tmp_path):
    """The memory's default reader is native: at the default layout its
    calibrated read-back lets an old English page reach the tiny tier, while a
    Russian page (no calibrated figure for Cyrillic) stays at base; both read
    back through decode() by native."""
    from optical_memory.config import DEFAULT_DECODER

    english = ("The harbour bridge opens on Tuesday at nine; the ferry timetable changes "
               "in spring and the night bus keeps its old route. ") * 6
    russian = ("Мост через гавань откроют во вторник в девять часов; расписание парома "
               "изменится весной, а ночной автобус сохранит старый маршрут. ") * 6
    with OpticalMemory(tmp_path / "d.db", keep_last=0,
                       aging=AgePolicy((Tier("base", 0, 1.0), Tier("small", 1, 0.625),
                                        Tier("tiny", None, 0.5)))) as mem:
        assert mem.decoder_name == DEFAULT_DECODER == "native"
        en = mem.add_document(english, user_id="u").page_ids[0]
        ru = mem.add_document(russian, user_id="u").page_ids[0]
        cs = mem.add_document("Příliš žluťoučký kůň úpěl ďábelské ódy. " * 8,
                              user_id="u").page_ids[0]
        for i in range(3):  # age both past the small tier
            mem.add_document(f"filler note {i}: nothing to see", user_id="u")
        mem.compact(user_id="u")
        assert mem.get_page(en, user_id="u").tier == "tiny"
        assert mem.get_page(ru, user_id="u").tier == "base"
        assert mem.get_page(cs, user_id="u").tier == "base"  # Czech: accented, not calibrated
        read = mem.decode(en, user_id="u")
        assert read.decoder == "native" and read.tier == "tiny" and read.precision > 0.97
        back = mem.decode(ru, user_id="u")
        assert back.decoder == "native" and back.precision > 0.95


def test_verify_names_the_reader_that_read_a_fallback_page(tmp_path):
    """With verify=True a Chinese page is read by the script fallback
    (tesseract): its measured figures say so, in meta and in the accounting."""
    from optical_memory.decode import available_decoders

    if available_decoders().get("tesseract") is not True:
        pytest.skip("tesseract not installed")
    chinese = "车库的钥匙放在厨房的蓝色盒子里。" * 8
    with OpticalMemory(tmp_path / "v.db", keep_last=0, aging=AgePolicy(verify=True)) as mem:
        ru = mem.add_document(chinese, user_id="u").page_ids[0]
        en = mem.add_document("The harbour bridge opens on Tuesday at nine. " * 4,
                              user_id="u").page_ids[0]
        rb = mem.get_page(ru, user_id="u").meta["readback"]
        assert rb["reader"] == "native" and rb["read_by"] == "tesseract"
        assert mem.get_page(en, user_id="u").meta["readback"]["read_by"] == "native"
        pages = {p.page_id: p for p in mem.context(20_000, user_id="u").pages}
        assert pages[ru].readback_source == "measured by tesseract"
        assert pages[en].readback_source == "measured"
