"""The memory facade: add, compact (age), retrieve, decode, context.

    from optical_memory import OpticalMemory

    with OpticalMemory() as mem:                      # SQLite in $OPTICAL_MEMORY_HOME
        mem.add([{"role": "user", "content": "hi"}], user_id="alice")
        hits = mem.retrieve("hi", user_id="alice")
        ctx = mem.context(8000, user_id="alice", system="You are helpful.")
        ctx.messages, ctx.accounting.ratio

Life of a chat turn: it is stored as text at once; while it is among the
``keep_last`` most recent turns it reaches the context as text. Once older,
it waits (*unpaged*) until the waiting turns fill a page; then ``compact()``
(called by ``add``) lays them onto pages, contiguous turns packed
continuously, rendered **once** at the master resolution (the target's page
size) and stored as the master PNG. Turns still waiting when ``context()`` is
called go into the context as a *pending* page rendered on the fly (cached,
not stored), so the context never holds more than ``keep_last`` turns as text
and ``context()`` never writes partial pages. Documents and plain texts are
rendered to pages at ``add`` time.

As items keep arriving, pages age (:mod:`optical_memory.aging`): ``compact()``
and ``context()`` move each page to the tier its age calls for, resampling
the tier image from the stored master PNG (cached in the store as a
rendition, and in process as base64 for the context's hot path).

Scope: every call takes ``user_id`` / ``agent_id`` / ``session_id``. Writes go
to exactly that scope; reads see the user's rows narrowed by the agent /
session when given (``agent_id=None`` reads all of the user's agents). No call
ever crosses ``user_id``.

``keep_text=False`` keeps no source text: items store only a hash and a
token count, every add renders its items to pages at once (no recent text
window: the context is all pages), each page is read back with the decoder
and the read-back is what search indexes; ``decode`` then has no reference
and reports ``precision=None``.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from optical_memory.aging import AgePolicy, deepseek_mode, image_tokens, resample_png
from optical_memory.context import (
    PAGES_HEADER,
    Context,
    ContextPage,
    KeptTurn,
    build_context,
    extend_window,
    text_message_tokens,
)
from optical_memory.decode.base import check_decoder_name
from optical_memory.errors import ConfigError, EmptyInputError, InputError, VisionTokensError
from optical_memory.render import RenderConfig, Renderer, RenderItem, Turn
from optical_memory.retrieve import Hit, Ranker, rerank
from optical_memory.store import (
    ConflictError,
    ItemRecord,
    NewItem,
    NewPage,
    NotFoundError,
    PageRecord,
    RenditionRecord,
    Scope,
    Store,
    StoreStats,
    open_store,
    text_hash,
)
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER, get_counter, get_target
from optical_memory.types import Page

if TYPE_CHECKING:  # pragma: no cover - torch is optional
    from optical_memory.encoder import DeepEncoder

logger = logging.getLogger(__name__)

#: Read-back the default layout is calibrated for (see :func:`default_render_config`).
DEFAULT_READBACK = 0.98
#: Font size used when no calibration fits: MEASURED.md, 11 px on a 1024²
#: page reads back 0.986 with tesseract on prose.
FALLBACK_FONT_PX = 11.0
#: Cache of base64 tier images for the context hot path, in bytes of base64.
B64_CACHE_BYTES = 512 * 1024 * 1024
#: Cache of decoded vision-token tensors for the context, in bytes of tensor data.
TOKEN_CACHE_BYTES = 256 * 1024 * 1024
#: Pages per ``DeepEncoder.encode`` call (bounds the float32 views held at once).
ENCODE_BATCH = 8
#: Tries at paging one scope's waiting turns when other processes page them too.
_PAGING_ATTEMPTS = 5
#: Most characters one ``add`` / ``add_document`` takes (all its texts together).
MAX_ADD_CHARS = 1_000_000
#: Most pages one item may fill (checked at ``add`` by laying it out).
MAX_PAGES_PER_ITEM = 256
_META_KEY = "memory"
_ROLES_OK = ("user", "assistant", "system", "tool", "developer", "function")
_LC_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class AddResult:
    """What one ``add`` stored: item ids in input order, the ids of pages made
    by this call (documents, and turns compacted because of it), the items'
    text tokens."""

    item_ids: tuple[str, ...]
    page_ids: tuple[str, ...]
    text_tokens: int

    @property
    def pages(self) -> int:
        return len(self.page_ids)


@dataclass(frozen=True)
class CompactResult:
    """page_ids: pages made from waiting turns; items_paged: turns laid onto
    them; moved: tier → pages that moved down into it."""

    page_ids: tuple[str, ...]
    items_paged: int
    moved: dict[str, int]


@dataclass(frozen=True)
class DecodedPage:
    """A page read back. ``precision`` is 1 − edit distance / length against
    the page's stored text (``None`` with ``keep_text=False``)."""

    page_id: str
    tier: str
    width: int
    height: int
    text: str
    decoder: str
    precision: float | None
    seconds: float


@dataclass(frozen=True)
class TierReport:
    """One tier measured on a sample page (``optical-memory tiers``)."""

    tier: str
    max_age: int | None
    width: int
    height: int
    vision_tokens: int
    text_tokens: int
    ratio: float
    precision: float | None
    seconds: float | None


@dataclass(frozen=True)
class _Draft:
    item: NewItem
    render: RenderItem
    full_text: str


def default_render_config(target: str, decoder: str = "tesseract") -> RenderConfig:
    """The memory's default page layout for ``target``.

    The densest calibrated layout reading back ≥ :data:`DEFAULT_READBACK`
    (:func:`optical_memory.fit.recommended_config`), drawn with newlines as
    visible markers (``newline_mode="marker"``, the glyph is
    :data:`optical_memory.render.NEWLINE_MARKER`): chat turns, tool JSON and
    code are newline-heavy, and breaking lines there leaves half of each page
    blank (measured on the synthetic conversation at 11 px, 1024²: ~1,300
    text tokens per page with breaks, ~2,870 with markers). Without a
    calibration for ``decoder`` it is the target's page at
    :data:`FALLBACK_FONT_PX`.
    """
    config: RenderConfig | None = None
    try:
        from optical_memory.fit import recommended_config

        config = recommended_config(target, decoder=decoder, threshold=DEFAULT_READBACK)
    except (ConfigError, InputError) as exc:
        logger.info("no calibrated layout for %s / %s (%s); using %g px", target, decoder,
                    exc, FALLBACK_FONT_PX)
    if config is None:
        w, h = get_target(target).page_size
        config = RenderConfig(width=w, height=h, font_size=FALLBACK_FONT_PX)
    return replace(config, newline_mode="marker")


class OpticalMemory:
    """Long-term agent memory, old material kept as page images.

    store:   a :class:`~optical_memory.store.Store`, a path / URL for
             :func:`~optical_memory.store.open_store`, or ``None`` for the
             default SQLite file (``$OPTICAL_MEMORY_HOME/memory.db``).
             A store passed in is not closed by :meth:`close`.
    target:  the vision model pages are sized and billed for.
    tokenizer / decoder: text-token counter and read-back decoder names.
    render_config: page layout; default :func:`default_render_config`. The
             master page is its ``width × height``.
    aging:   :class:`~optical_memory.aging.AgePolicy` (default tiers).
    keep_text: keep source text (default) or only pages (see module doc).
    keep_last: recent turns kept as text (never paged before they leave it).
    ranker:  optional semantic re-ranker for :meth:`retrieve`.
    decoder_options: passed to :func:`~optical_memory.decode.get_decoder`.
    encoder: optional :class:`~optical_memory.encoder.DeepEncoder` (needs the
             ``encoder`` extra and a ``deepseek-ocr`` target with layout
             tokens, i.e. not ``-raw``). Every rendition the memory makes or
             uses for a tier, the full-size tier included, then also stores
             the page's vision tokens in the DeepSeek mode the tier is billed
             in (:func:`~optical_memory.aging.deepseek_mode`: base 273, small
             111, tiny 73 rows at the default tiers), as a safetensors blob
             (:mod:`optical_memory.encoder.cache`) in
             ``RenditionRecord.vision_tokens``, named by
             ``RenditionRecord.encoder``. Computed once per page and tier;
             recomputed when the encoder's name (config, weights, dtype)
             differs. ``context(vision_tokens=True)`` returns them.
    """

    def __init__(
        self,
        store: Store | str | os.PathLike[str] | None = None,
        *,
        target: str = DEFAULT_TARGET,
        tokenizer: str = DEFAULT_TOKENIZER,
        decoder: str = "tesseract",
        render_config: RenderConfig | None = None,
        aging: AgePolicy | None = None,
        keep_text: bool = True,
        keep_last: int = 8,
        ranker: Ranker | None = None,
        decoder_options: Mapping[str, Any] | None = None,
        encoder: DeepEncoder | None = None,
    ) -> None:
        _check_count("keep_last", keep_last)
        self.target = get_target(target)
        self.encoder = encoder
        self.encoder_name = _check_encoder(encoder, self.target) if encoder is not None else None
        self.counter = get_counter(tokenizer)
        # the name also picks the calibrated layout: a typo fails here, not at a decode
        self.decoder_name = check_decoder_name(decoder)
        self.decoder_options = dict(decoder_options or {})
        self.render_config = render_config or default_render_config(target, decoder)
        if not isinstance(self.render_config, RenderConfig):
            raise ConfigError(
                f"render_config must be a RenderConfig (got {type(self.render_config).__name__})"
            )
        self.renderer = Renderer(self.render_config)
        self.aging = aging or AgePolicy()
        if not isinstance(self.aging, AgePolicy):
            raise ConfigError(f"aging must be an AgePolicy (got {type(self.aging).__name__})")
        self.keep_text = bool(keep_text)
        self.keep_last = keep_last
        self.ranker = ranker
        self._owns_store = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else open_store(store)
        self._decoders: dict[str, Any] = {}
        self._b64: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._b64_bytes = 0
        self._pending: OrderedDict[tuple, list[ContextPage]] = OrderedDict()
        self._tokens: OrderedDict[tuple, tuple[Any, Any]] = OrderedDict()
        self._tokens_bytes = 0
        self._header_tokens = self.counter.count(PAGES_HEADER)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the store if this memory opened it. Idempotent."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> OpticalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        enc = f", encoder={self.encoder_name!r}" if self.encoder_name else ""
        return (f"OpticalMemory(store={self.store!r}, target={self.target.name!r}, "
                f"tokenizer={self.counter.name!r}, decoder={self.decoder_name!r}{enc})")

    @property
    def master_size(self) -> tuple[int, int]:
        return self.render_config.width, self.render_config.height

    # -- add ---------------------------------------------------------------

    def add(
        self,
        messages: str | Sequence[Mapping[str, Any] | Turn | Any] | Mapping[str, Any] | Turn,
        *,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        kind: str | None = None,
    ) -> AddResult:
        """Store chat turns or a text.

        ``messages``: a string (stored as ``kind`` "text", or "document"), one
        or a list of chat messages — dicts ``{"role", "content", "name"?,
        "time"?, "tool_calls"?, "tool_call_id"?}`` (OpenAI or LangChain
        tool-call shapes), :class:`~optical_memory.render.Turn` objects, or
        LangChain message objects. Content may be a string or a list of text
        blocks. Raises :class:`EmptyInputError` / :class:`InputError` (and
        stores nothing) on empty or unusable input.
        """
        scope = Scope(user_id, agent_id, session_id)
        if isinstance(messages, str):
            if kind not in (None, "text", "document"):
                raise InputError(f"kind for a string must be 'text' or 'document' (got {kind!r})")
            return self._add_texts([self._text_draft(messages, kind or "text", None)], scope)
        if kind not in (None, "turn"):
            raise InputError(f"kind for chat messages must be 'turn' (got {kind!r})")
        if isinstance(messages, Mapping | Turn):
            messages = [messages]
        if not isinstance(messages, Sequence):
            raise InputError(
                f"messages must be a string or a list of messages (got {type(messages).__name__})"
            )
        if not messages:
            raise EmptyInputError("no messages to add (got an empty list)")
        drafts = [self._turn_draft(m, i) for i, m in enumerate(messages)]
        if not self.keep_text:
            return self._add_texts(drafts, scope)
        self._check_limits(drafts)
        ids, _ = self.store.add_items([d.item for d in drafts], scope=scope)
        compacted = self.compact(user_id=user_id, agent_id=agent_id, session_id=session_id)
        return AddResult(tuple(ids), compacted.page_ids, sum(d.item.text_tokens for d in drafts))

    def add_document(
        self,
        text: str,
        *,
        title: str | None = None,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> AddResult:
        """Store a (markdown) document, rendered to pages at once."""
        scope = Scope(user_id, agent_id, session_id)
        return self._add_texts([self._text_draft(text, "document", title)], scope)

    def _text_draft(self, text: object, kind: str, title: str | None) -> _Draft:
        if not isinstance(text, str):
            raise InputError(f"text must be a string (got {type(text).__name__})")
        if not text.strip():
            raise EmptyInputError(f"nothing to store: the {kind} is empty or whitespace only "
                                  f"({len(text)} characters)")
        if title is not None and not isinstance(title, str):
            raise InputError(f"title must be a string (got {type(title).__name__})")
        tokens = self.counter.count(text)
        item = NewItem(kind=kind, text=text if self.keep_text else None, text_tokens=tokens,
                       name=title, content_hash=text_hash(text))
        label = f"[{title}]" if title else None
        return _Draft(item, RenderItem(item.id, "document" if kind == "document" else "text",
                                       text, label), text)

    def check_messages(self, messages: Sequence[Any], *, names: Sequence[str] | None = None) -> int:
        """Check chat messages as :meth:`add` would, storing nothing; returns
        their text tokens. For a caller that stores a long log in several
        ``add`` calls (each holds at most :data:`MAX_ADD_CHARS`) and must
        reject a bad log before any of it is stored. ``names``: how errors
        name each message (default ``messages[i]``; the CLI passes
        ``file:line``). Raises :class:`InputError` / :class:`EmptyInputError`."""
        if isinstance(messages, str | Mapping) or not isinstance(messages, Sequence):
            raise InputError(f"messages must be a list of messages (got {type(messages).__name__})")
        if names is not None and len(names) != len(messages):
            raise InputError(f"names has {len(names)} entries for {len(messages)} messages")
        total = 0
        for i, message in enumerate(messages):
            draft = self._turn_draft(message, i, where=None if names is None else names[i])
            self._check_limits([draft], where=None if names is None else names[i])
            total += draft.item.text_tokens
        return total

    def _turn_draft(self, message: Any, index: int, *, where: str | None = None) -> _Draft:
        where = where or f"messages[{index}]"
        if isinstance(message, Turn):
            role, content, name, time = message.role, message.content, message.name, message.time
            tool_calls: list[Any] = []
            answers = None
        elif isinstance(message, Mapping):
            role = message.get("role")
            content = message.get("content")
            name, time = message.get("name"), message.get("time")
            tool_calls = list(message.get("tool_calls") or [])
            answers = message.get("tool_call_id")
        elif hasattr(message, "type") and hasattr(message, "content"):  # LangChain BaseMessage
            role = _LC_ROLES.get(getattr(message, "type", None), getattr(message, "type", None))
            content = message.content
            name, time = getattr(message, "name", None), None
            tool_calls = list(getattr(message, "tool_calls", None) or [])
            answers = getattr(message, "tool_call_id", None)
        else:
            raise InputError(f"{where} must be a dict, a Turn or a chat message "
                             f"(got {type(message).__name__})")
        if not isinstance(role, str) or role not in _ROLES_OK:
            raise InputError(f"{where}.role must be one of {_ROLES_OK} (got {role!r})")
        content = _content_text(content, where)
        for field_name, value in (("name", name), ("time", time)):
            if value is not None and not isinstance(value, str):
                raise InputError(f"{where}.{field_name} must be a string (got {type(value).__name__})")
        calls = [_tool_call(c, f"{where}.tool_calls[{j}]") for j, c in enumerate(tool_calls)]
        lines = [content] if content else []
        lines += [f"→ {fn}({args}) [{cid}]" for cid, fn, args in calls]
        text = "\n".join(lines)
        if not text.strip():
            raise EmptyInputError(f"{where} is empty (role {role!r}, no content, no tool calls)")
        if role == "tool":
            if not isinstance(answers, str) or not answers.strip():
                raise InputError(f"{where}: a tool message needs tool_call_id (got {answers!r})")
            ids: tuple[str, ...] = (answers,)
        else:
            ids = tuple(cid for cid, _, _ in calls)
        meta: dict[str, Any] = {"content_len": len(content)}
        if self.keep_text and tool_calls:
            meta["tool_calls"] = [_jsonable(c) for c in tool_calls]
        item = NewItem(kind="turn", text=text if self.keep_text else None,
                       text_tokens=self.counter.count(text), role=role, name=name, time=time,
                       tool_call_ids=ids, meta=meta, content_hash=text_hash(text))
        label = Turn(item.id, role, text, name, time).label
        return _Draft(item, RenderItem(item.id, "turn", text, label), text)

    def _add_texts(self, drafts: list[_Draft], scope: Scope) -> AddResult:
        """Store items and their pages in one transaction (documents, texts,
        and every item in ``keep_text=False`` mode)."""
        self._check_limits(drafts)
        before = self.store.stats(scope)
        pages = self.renderer.render_items([d.render for d in drafts])
        n_before, tok_before = before.items, before.text_tokens
        index = {d.item.id: i for i, d in enumerate(drafts)}
        cum = _cumsum([d.item.text_tokens for d in drafts])
        texts = {d.item.id: d.full_text for d in drafts}
        roles = {d.item.id: (d.item.role, d.item.tool_call_ids) for d in drafts}
        total_after = n_before + len(drafts)
        new_pages = []
        for page in pages:
            last = max(index[s.item_id] for s in page.spans)
            rank, tok_rank = n_before + last + 1, tok_before + cum[last]
            new_pages.append(self._new_page(page, texts, roles, rank, tok_rank,
                                            age=self._age(total_after - rank,
                                                          tok_before + cum[-1] - tok_rank)))
        ids, page_ids = self.store.add_items([d.item for d in drafts], new_pages, scope=scope)
        self._store_renditions(new_pages, scope)
        return AddResult(tuple(ids), tuple(page_ids), sum(d.item.text_tokens for d in drafts))

    def _check_limits(self, drafts: Sequence[_Draft], *, where: str | None = None) -> None:
        """:class:`InputError` when an add exceeds :data:`MAX_ADD_CHARS` or an
        item would fill more than :data:`MAX_PAGES_PER_ITEM` pages."""
        total = sum(len(d.full_text) for d in drafts)
        if total > MAX_ADD_CHARS:
            raise InputError(f"{where + ': ' if where else ''}add too large: {total} characters "
                             f"in {len(drafts)} item(s) (limit {MAX_ADD_CHARS} per add)")
        for i, d in enumerate(drafts):
            if len(d.full_text) > MAX_PAGES_PER_ITEM:  # shorter texts cannot fill more pages
                pages = len(self.renderer.layout([d.render]))
                if pages > MAX_PAGES_PER_ITEM:
                    raise InputError(f"{where or f'item {i}'} fills {pages} pages (limit "
                                     f"{MAX_PAGES_PER_ITEM} per item); split it or use a "
                                     f"smaller font")

    def _age(self, turns: int, tokens: int) -> int:
        return turns if self.aging.unit == "turns" else tokens

    def _new_page(self, page: Page, texts: Mapping[str, str],
                  roles: Mapping[str, tuple[str | None, tuple[str, ...]]],
                  item_rank: int, token_rank: int, *, age: int) -> NewPage:
        held = sum(self.counter.count(texts[s.item_id][s.start:s.end]) for s in page.spans)
        calls, results = [], []
        for item_id in dict.fromkeys(s.item_id for s in page.spans):
            role, ids = roles[item_id]
            (results if role == "tool" else calls).extend(ids)
        readback = None
        if not self.keep_text:
            readback = self._decoder(self.decoder_name).decode(page).text
        tier = self.aging.tier_for_age(age).name
        draft = NewPage.from_page(page, tier=tier, keep_text=self.keep_text, readback=readback)
        meta = dict(draft.meta)
        meta[_META_KEY] = {"item_rank": item_rank, "token_rank": token_rank,
                           "text_tokens": held, "calls": calls, "results": results}
        return replace(draft, meta=meta)

    def _store_renditions(self, pages: Iterable[NewPage], scope: Scope) -> None:
        self._ensure_renditions([(p.id, p.tier, (p.width, p.height), p.png) for p in pages], scope)

    # -- compaction and aging ---------------------------------------------

    def compact(
        self,
        *,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        force: bool = False,
    ) -> CompactResult:
        """Page waiting turns and age pages.

        Turns older than the ``keep_last`` most recent ones (of their exact
        scope) that no page holds yet are laid onto pages when they fill at
        least one (with ``force``: always, even a partial page). Then every
        page visible under the scope moves to the tier its age calls for.
        """
        scope = Scope(user_id, agent_id, session_id)
        waiting = self.store.list_items(scope, kinds=["turn"], on_page=False)
        by_scope: dict[Scope, list[ItemRecord]] = {}
        for item in waiting:
            if item.text is not None:
                by_scope.setdefault(item.scope, []).append(item)
        made: list[str] = []
        paged = 0
        for exact, items in by_scope.items():
            for attempt in range(_PAGING_ATTEMPTS):
                try:
                    ids, n = self._page_turns(exact, items, force=force)
                    break
                except ConflictError:
                    if attempt + 1 == _PAGING_ATTEMPTS:
                        raise
                    # another process paged some of these turns meanwhile
                    logger.info("paging under %s raced another writer; re-reading", exact)
                    items = [t for t in self.store.list_items(exact, kinds=["turn"], on_page=False)
                             if t.scope == exact and t.text is not None]
            made += ids
            paged += n
        moved = self._age_pages(scope)[1]
        return CompactResult(tuple(made), paged, moved)

    def _recent_window(self, scope: Scope, keep_last: int) -> list[ItemRecord]:
        """The last ``keep_last`` turns under ``scope``, moved back so no tool
        result is separated from its call."""
        if keep_last == 0:
            return []
        fetch = keep_last + 32
        while True:
            recent = self.store.list_items(scope, kinds=["turn"], newest_first=True, limit=fetch)
            recent.reverse()
            start = max(0, len(recent) - keep_last)
            start = extend_window([t.role for t in recent], [t.tool_call_ids for t in recent], start)
            if start > 0 or len(recent) < fetch:
                return recent[start:]
            fetch *= 4

    def _page_turns(self, exact: Scope, waiting: list[ItemRecord], *, force: bool,
                    replaces: Sequence[str] = (), slot: int | None = None,
                    tier_floor: str | None = None) -> tuple[list[str], int]:
        """Lay ``waiting`` (items of scope ``exact``, by seq) onto new pages.
        Without ``replaces``: turns in the recent window stay text, and
        unless ``force`` a last partial page waits. With ``replaces`` (a
        re-render): all of ``waiting`` is paged, swapping out those pages;
        the new pages take their place in the history (``slot``, see
        :func:`_page_order`) and are no younger than ``tier_floor``."""
        if not replaces:
            window = self._recent_window(exact, self.keep_last)
            if window:
                cut = window[0].seq
                waiting = [t for t in waiting if t.seq < cut]
        if not waiting:
            return [], 0
        items = [_render_item(t) for t in waiting]
        layouts = self.renderer.layout(items)
        if len(layouts) < 2 and not force:
            return [], 0
        if not force:
            on_last = {s.item_id for s in layouts[-1].spans}
            keep = [t for t in waiting if t.id not in on_last] or waiting[:1]
            waiting = keep
            items = [_render_item(t) for t in waiting]
        pages = self.renderer.render_items(items)
        # ranks: how many items / tokens of this exact scope precede-and-include
        # each page's newest item; ages follow from the scope's totals later.
        stats = self.store.stats(exact)
        after = self.store.list_items(exact, since_seq=waiting[-1].seq)
        pos = {t.id: i for i, t in enumerate(waiting)}
        n_after, tok_after = len(after), sum(t.text_tokens for t in after)
        suffix_tok = _cumsum([t.text_tokens for t in reversed(waiting)])[::-1]  # tokens from i on
        texts = {t.id: t.text or "" for t in waiting}
        roles = {t.id: (t.role, t.tool_call_ids) for t in waiting}
        new_pages = []
        for page in pages:
            last = max(pos[s.item_id] for s in page.spans)
            items_after = n_after + (len(waiting) - 1 - last)
            tokens_after = tok_after + (suffix_tok[last + 1] if last + 1 < len(waiting) else 0)
            new_pages.append(self._new_page(
                page, texts, roles, stats.items - items_after, stats.text_tokens - tokens_after,
                age=self._age(items_after, tokens_after)))
        if slot is not None or tier_floor is not None:
            new_pages = [self._replacement(p, slot, tier_floor) for p in new_pages]
        # exclusive: fails (ConflictError, nothing written) if another process
        # paged any of these turns since they were read
        _, page_ids = self.store.add_items([], new_pages, scope=exact, exclusive=True,
                                           replaces=replaces)
        self._store_renditions(new_pages, exact)
        logger.info("compacted %d turns onto %d pages under %s", len(waiting), len(page_ids), exact)
        return page_ids, len(waiting)

    def _replacement(self, page: NewPage, slot: int | None, tier_floor: str | None) -> NewPage:
        """``page`` placed at ``slot`` in the page order, and aged at least to
        ``tier_floor`` (re-rendering never makes pages younger)."""
        meta = dict(page.meta)
        meta[_META_KEY] = dict(meta[_META_KEY], slot=slot) if slot is not None else meta[_META_KEY]
        tier = page.tier
        if (tier_floor is not None and tier_floor in self.aging.names and tier in self.aging.names
                and self.aging.rank(tier_floor) > self.aging.rank(tier)):
            tier = tier_floor
        return replace(page, meta=meta, tier=tier)

    def _age_pages(self, scope: Scope, totals: dict[Scope, StoreStats] | None = None
                   ) -> tuple[list[PageRecord], dict[str, int]]:
        """Pages visible under ``scope`` (no PNG), each moved to the tier its
        age calls for (never up: deleting items does not rejuvenate pages).
        ``totals`` caches :meth:`Store.stats` per exact scope (filled here)."""
        pages = self.store.list_pages(scope, with_png=False)
        totals = {} if totals is None else totals
        moved: dict[str, int] = {}
        out = []
        jobs: dict[Scope, list[tuple[str, str, tuple[int, int], bytes | None]]] = {}
        for p in pages:
            info = p.meta.get(_META_KEY)
            if not info:
                out.append(p)
                continue
            if p.scope not in totals:
                totals[p.scope] = self.store.stats(p.scope)
            st = totals[p.scope]
            age = self._age(st.items - info["item_rank"], st.text_tokens - info["token_rank"])
            want = self.aging.tier_for_age(max(0, age)).name
            if p.tier in self.aging.names and self.aging.rank(want) <= self.aging.rank(p.tier):
                out.append(p)
                continue
            jobs.setdefault(p.scope, []).append((p.id, want, (p.width, p.height), None))
            moved[want] = moved.get(want, 0) + 1
            out.append(replace(p, tier=want))
        for exact, todo in jobs.items():  # renditions (and tokens) first, in batches
            self._ensure_renditions(todo, exact)
            for page_id, want, _, _ in todo:
                self.store.set_tier(page_id, want, exact)
        return out, moved

    def _ensure_rendition(self, page_id: str, tier: str, master: tuple[int, int],
                          master_png: bytes | None, scope: Scope) -> None:
        self._ensure_renditions([(page_id, tier, master, master_png)], scope)

    def _ensure_renditions(
        self, jobs: Sequence[tuple[str, str, tuple[int, int], bytes | None]], scope: Scope
    ) -> None:
        """Store each ``(page_id, tier, master size, master PNG or None)``'s
        tier rendition unless present. Without an encoder a full-size tier
        needs none (the master is its image); with one, every tier gets a
        rendition holding the page's vision tokens by this encoder (the
        full-size one repeats the master PNG), encoded in batches per mode."""
        to_encode: list[tuple[str, str, tuple[int, int], bytes]] = []
        for page_id, tier, master, master_png in jobs:
            size = self.aging.size(tier, master)
            full = size == tuple(master)
            if full and self.encoder is None:
                continue
            rend = self.store.get_rendition(page_id, tier, scope)
            if rend is not None and (self.encoder is None or (
                    rend.encoder == self.encoder_name and rend.vision_tokens is not None)):
                continue
            if rend is not None:
                png = rend.png
            else:
                if master_png is None:
                    master_png = self._master_png(page_id, scope)
                png = master_png if full else resample_png(master_png, size)
            if self.encoder is None:
                self.store.put_rendition(
                    RenditionRecord(page_id, tier, size[0], size[1], png), scope)
            else:
                to_encode.append((page_id, tier, size, png))
        if not to_encode:
            return
        modes = [deepseek_mode(self.target, w, h) for _, _, (w, h), _ in to_encode]
        encoded = self._encode([png for *_, png in to_encode], modes)
        for (page_id, tier, size, png), (tensor, layout) in zip(to_encode, encoded):
            self._put_tokens(page_id, tier, size, png, tensor, layout, scope)

    def _encode(self, pngs: Sequence[bytes], modes: Sequence[str]) -> list[tuple[Any, Any]]:
        """``(tensor [N, D] on CPU, TokenLayout)`` per PNG, each in its mode,
        :data:`ENCODE_BATCH` pages per encoder call."""
        import numpy as np
        from PIL import Image

        assert self.encoder is not None
        out: list[tuple[Any, Any] | None] = [None] * len(pngs)
        by_mode: dict[str, list[int]] = {}
        for i, mode in enumerate(modes):
            by_mode.setdefault(mode, []).append(i)
        for mode, idx in by_mode.items():
            for start in range(0, len(idx), ENCODE_BATCH):
                chunk = idx[start:start + ENCODE_BATCH]
                images = []
                for i in chunk:
                    with Image.open(io.BytesIO(pngs[i])) as img:
                        images.append(np.asarray(img.convert("L"), dtype=np.uint8))
                result = self.encoder.encode(images, mode)
                for i, tensor, layout in zip(chunk, result.embeddings, result.layouts):
                    out[i] = (tensor.detach().to("cpu"), layout)
        logger.debug("encoded %d page images (%s)", len(pngs), ", ".join(sorted(by_mode)))
        return [o for o in out if o is not None]

    def _put_tokens(self, page_id: str, tier: str, size: tuple[int, int], png: bytes,
                    tensor: Any, layout: Any, scope: Scope) -> None:
        from optical_memory.encoder.cache import TokenMeta, pack_tokens

        assert self.encoder_name is not None
        blob = pack_tokens(tensor, TokenMeta(layout.mode, self.encoder_name, layout))
        self.store.put_rendition(RenditionRecord(page_id, tier, size[0], size[1], png,
                                                 vision_tokens=blob, encoder=self.encoder_name),
                                 scope)
        self._remember_tokens((page_id, tier, layout.mode), tensor, layout)

    def _remember_tokens(self, key: tuple, tensor: Any, layout: Any) -> None:
        old = self._tokens.pop(key, None)
        if old is not None:
            self._tokens_bytes -= _tensor_bytes(old[0])
        self._tokens[key] = (tensor, layout)
        self._tokens_bytes += _tensor_bytes(tensor)
        while self._tokens_bytes > TOKEN_CACHE_BYTES and len(self._tokens) > 1:
            _, (dropped, _) = self._tokens.popitem(last=False)
            self._tokens_bytes -= _tensor_bytes(dropped)

    def tier_png(self, page_id: str, tier: str | None = None, *, user_id: str = "default",
                 agent_id: str | None = None, session_id: str | None = None) -> bytes:
        """PNG of a page at ``tier`` (default: its current tier); the master
        for a full-size tier, else the stored (or freshly resampled) rendition."""
        scope = Scope(user_id, agent_id, session_id)
        page = self.store.get_page(page_id, scope)
        if page is None:
            raise NotFoundError(f"no page {page_id!r} under {scope}")
        return self._tier_png(page, page.tier if tier is None else tier, scope)

    def _tier_png(self, page: PageRecord, tier: str, scope: Scope) -> bytes:
        master = (page.width, page.height)
        size = self.aging.size(tier, master)
        if size == master:
            png = page.png if page.png is not None else self._master_png(page.id, scope)
            return png
        rend = self.store.get_rendition(page.id, tier, scope)
        if rend is None:
            self._ensure_rendition(page.id, tier, master, page.png, scope)
            rend = self.store.get_rendition(page.id, tier, scope)
            assert rend is not None
        return rend.png

    def _master_png(self, page_id: str, scope: Scope) -> bytes:
        rec = self.store.get_page(page_id, scope)
        if rec is None or rec.png is None:
            raise NotFoundError(f"no page {page_id!r} under {scope}")
        return rec.png

    # -- retrieve / decode -------------------------------------------------

    def retrieve(
        self,
        query: str,
        *,
        k: int = 5,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        semantic: bool | None = None,
    ) -> list[Hit]:
        """Up to ``k`` matches for ``query``, best first, each with its page
        (when paged), the matching span and a score. BM25 keyword search;
        with a ranker (``semantic`` defaults to "when one is configured") the
        top ``4k`` keyword candidates are re-ordered by meaning."""
        scope = Scope(user_id, agent_id, session_id)
        _check_count("k", k)
        use_ranker = self.ranker is not None if semantic is None else semantic
        if use_ranker and self.ranker is None:
            raise ConfigError("semantic=True needs a ranker (OpticalMemory(ranker=MiniLMRanker()))")
        sources = ("item",) if self.keep_text else ("page",)
        found = self.store.search(query, scope, k=4 * k if use_ranker else k, sources=sources)
        if use_ranker and found:
            assert self.ranker is not None
            scores = rerank(query, [h.snippet for h in found], [h.score for h in found], self.ranker)
            found = [h for _, h in sorted(zip(scores, found), key=lambda x: -x[0])]
            found = [replace(h, score=s) for s, h in zip(sorted(scores, reverse=True), found)]
        hits = []
        for h in found[:k]:
            span = h.offsets[0] if h.offsets else None
            if h.source == "page":
                page = self.store.get_page(h.page_id, scope) if h.page_id else None
                hits.append(Hit(None, h.page_id, h.score, h.snippet, span, page,
                                page.tier if page else None))
                continue
            page = None
            assert h.item_id is not None
            for p in self.store.pages_for_item(h.item_id, scope):
                spans = [s for s in p.spans if s.item_id == h.item_id]
                if span is None or any(s.start <= span[0] < s.end for s in spans):
                    page = p
                    break
            hits.append(Hit(h.item_id, page.id if page else None, h.score, h.snippet, span,
                            page, page.tier if page else None))
        return hits

    def decode(
        self,
        page: str | Hit,
        *,
        tier: str | None = None,
        decoder: str | None = None,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
    ) -> DecodedPage:
        """Read a page (by id, or a :class:`Hit`'s page) back to text at
        ``tier`` (default its current tier) with ``decoder`` (default the
        memory's)."""
        scope = Scope(user_id, agent_id, session_id)
        if isinstance(page, Hit):
            if page.page_id is None:
                raise InputError(
                    f"hit for item {page.item_id!r} is not on a page yet: its text is in "
                    f"hit.snippet. The last keep_last={self.keep_last} turns stay text; older "
                    "turns are paged once a page's worth has left that window "
                    "(compact(force=True) pages those now)")
            page = page.page_id
        if not isinstance(page, str):
            raise InputError(f"page must be a page id or a Hit (got {type(page).__name__})")
        rec = self.store.get_page(page, scope)
        if rec is None:
            raise NotFoundError(f"no page {page!r} under {scope}")
        use_tier = rec.tier if tier is None else tier
        self.aging.tier(use_tier)
        png = self._tier_png(rec, use_tier, scope)
        name = decoder or self.decoder_name
        result = self._decoder(name).decode(png)
        prec = None
        if rec.text is not None:
            from optical_memory.decode import precision
            from optical_memory.render import NEWLINE_MARKER

            prec = precision(rec.text, result.text, marker=NEWLINE_MARKER)
        w, h = self.aging.size(use_tier, (rec.width, rec.height))
        return DecodedPage(rec.id, use_tier, w, h, result.text, result.decoder, prec, result.seconds)

    def _decoder(self, name: str):
        if name not in self._decoders:
            from optical_memory.decode import get_decoder

            opts = self.decoder_options if name == self.decoder_name else {}
            self._decoders[name] = get_decoder(name, **opts)
        return self._decoders[name]

    # -- context -----------------------------------------------------------

    def context(
        self,
        budget_tokens: int,
        *,
        target: str | None = None,
        keep_last: int | None = None,
        system: str | None = None,
        user_id: str = "default",
        agent_id: str | None = None,
        session_id: str | None = None,
        vision_tokens: bool = False,
    ) -> Context:
        """Messages that fit ``budget_tokens``: the system message, the last
        ``keep_last`` turns as text (moved back to include the call of a tool
        result at its start), and older material as page images at their age
        tier, oldest first; the oldest page groups are dropped when the budget
        is short. ``target`` re-bills the same images for another model.
        Raises :class:`InputError` when the system message and kept turns
        alone exceed the budget (the message gives the numbers).

        ``vision_tokens=True`` (needs an encoder, and a deepseek-ocr target
        with layout tokens) also returns, in ``Context.vision_tokens``, each
        page's token embeddings [N, D] (CPU, the encoder's dtype; shared with
        the cache, so copy before changing them in place) in the order of
        the image blocks, with ``Context.token_layouts``; N equals the
        page's billed ``vision_tokens``. Cached tokens are used; missing or
        stale ones (another encoder, another mode) are computed and stored.
        """
        scope = Scope(user_id, agent_id, session_id)
        keep = self.keep_last if keep_last is None else keep_last
        _check_count("keep_last", keep)
        if system is not None and not isinstance(system, str):
            raise InputError(f"system must be a string (got {type(system).__name__})")
        tgt = self.target if target is None else get_target(target)
        if vision_tokens:
            if self.encoder is None:
                raise ConfigError("vision_tokens=True needs an encoder "
                                  "(OpticalMemory(encoder=DeepEncoder.from_pretrained(...)))")
            _check_token_target(tgt)
        window = self._recent_window(scope, keep) if self.keep_text else []
        window = [t for t in window if t.text is not None]
        in_window = {t.id for t in window}
        turns = [KeptTurn(t.id, _message(t), text_message_tokens(t.text_tokens)) for t in window]

        totals: dict[Scope, StoreStats] = {}
        records, _ = self._age_pages(scope, totals)
        records.sort(key=_page_order)  # re-rendered pages keep their place in the history
        pages: list[ContextPage] = []
        overlap: dict[str, ItemRecord] = {}
        for rec in records:
            items = rec.item_ids
            if items and any(i in in_window for i in items):
                # some of its turns are in the text window (keep_last above the
                # memory's, or recent turns deleted): the page's other items are
                # laid out afresh below, so no turn reaches the model twice
                for item_id in items:
                    if item_id not in in_window and item_id not in overlap:
                        item = self.store.get_item(item_id, rec.scope)
                        if item is not None and item.text is not None:
                            overlap[item_id] = item
                continue
            pages.append(self._context_page(rec, tgt, scope))
        cut = window[0].seq if window else None
        waiting = [t for t in self.store.list_items(scope, kinds=["turn"], on_page=False)
                   if t.text is not None and (cut is None or t.seq < cut)]
        waiting = sorted([*waiting, *overlap.values()], key=lambda t: t.seq)
        if waiting:
            pages += self._pending_pages(waiting, tgt)

        st = totals.get(scope) or self.store.stats(scope)
        system_tokens = self.counter.count(system) if system else 0
        history = st.text_tokens + text_message_tokens(0) * st.items
        history += text_message_tokens(system_tokens) if system else 0
        ctx = build_context(
            budget_tokens=budget_tokens, system=system, system_tokens=system_tokens,
            turns=turns, pages=pages, header_tokens=self._header_tokens,
            history_text_tokens=history, tokenizer=self.counter.name, target=tgt.name,
            decoder=self.decoder_name,
        )
        if not vision_tokens:
            return ctx
        found = self._context_tokens(ctx.pages, tgt, scope)
        return replace(ctx, vision_tokens=tuple(t for t, _ in found),
                       token_layouts=tuple(layout for _, layout in found))

    def _context_tokens(self, pages: Sequence[ContextPage], tgt, scope: Scope
                        ) -> list[tuple[Any, Any]]:
        """``(tensor, layout)`` per page: from the in-process cache, else the
        stored rendition's blob, else encoded now (and stored for stored
        pages; pending pages are cached in process only)."""
        from optical_memory.encoder.cache import unpack_tokens

        found: list[tuple[Any, Any] | None] = [None] * len(pages)
        keys, modes, missing = [], [], []
        for i, p in enumerate(pages):
            mode = deepseek_mode(tgt, p.width, p.height)
            ident = p.page_id or "pending:" + hashlib.sha256(p.png_b64.encode("ascii")).hexdigest()
            key = (ident, p.tier, mode)
            keys.append(key)
            modes.append(mode)
            hit = self._tokens.get(key)
            if hit is not None:
                self._tokens.move_to_end(key)
                found[i] = hit
                continue
            if p.page_id is not None:
                rend = self.store.get_rendition(p.page_id, p.tier, scope)
                if rend is not None and rend.vision_tokens and rend.encoder == self.encoder_name:
                    try:
                        tensor, meta = unpack_tokens(rend.vision_tokens)
                    except VisionTokensError as exc:
                        logger.warning("recomputing vision tokens of page %s (%s): %s",
                                       p.page_id, p.tier, exc)
                    else:
                        if meta.mode == mode and meta.encoder == self.encoder_name:
                            self._remember_tokens(key, tensor, meta.layout)
                            found[i] = (tensor, meta.layout)
                            continue
            missing.append(i)
        if missing:
            pngs = [base64.b64decode(pages[i].png_b64) for i in missing]
            encoded = self._encode(pngs, [modes[i] for i in missing])
            for i, png, (tensor, layout) in zip(missing, pngs, encoded):
                p = pages[i]
                if p.page_id is not None:
                    self._put_tokens(p.page_id, p.tier, (p.width, p.height), png, tensor,
                                     layout, scope)
                else:
                    self._remember_tokens(keys[i], tensor, layout)
                found[i] = (tensor, layout)
        out = [f for f in found if f is not None]
        for p, (tensor, _) in zip(pages, out):
            if tensor.shape[0] != p.vision_tokens:
                raise ConfigError(
                    f"the encoder gave {tensor.shape[0]} vision tokens for page {p.page_id} "
                    f"({p.tier}, {p.width}x{p.height}) but {tgt.name} bills {p.vision_tokens}"
                )
        return out

    def _context_page(self, rec: PageRecord, tgt, scope: Scope) -> ContextPage:
        info = rec.meta.get(_META_KEY, {})
        w, h = self.aging.size(rec.tier, (rec.width, rec.height))
        return ContextPage(
            page_id=rec.id, tier=rec.tier, width=w, height=h,
            vision_tokens=image_tokens(tgt, w, h),
            text_tokens=int(info.get("text_tokens", 0)),
            item_ids=rec.item_ids,
            calls=tuple(info.get("calls", ())), results=tuple(info.get("results", ())),
            png_b64=self._b64_for(rec, scope),
        )

    def _b64_for(self, rec: PageRecord, scope: Scope) -> str:
        key = (rec.id, rec.tier)
        hit = self._b64.get(key)
        if hit is not None:
            self._b64.move_to_end(key)
            return hit
        encoded = base64.b64encode(self._tier_png(rec, rec.tier, scope)).decode("ascii")
        self._b64[key] = encoded
        self._b64_bytes += len(encoded)
        while self._b64_bytes > B64_CACHE_BYTES and len(self._b64) > 1:
            _, old = self._b64.popitem(last=False)
            self._b64_bytes -= len(old)
        return encoded

    def _pending_pages(self, waiting: list[ItemRecord], tgt) -> list[ContextPage]:
        key = (tuple(t.id for t in waiting), tgt.name)
        if key in self._pending:
            self._pending.move_to_end(key)
            return self._pending[key]
        fresh = self.aging.tiers[0]
        out = []
        for page in self.renderer.render_items([_render_item(t) for t in waiting]):
            roles = {t.id: (t.role, t.tool_call_ids) for t in waiting}
            texts = {t.id: t.text or "" for t in waiting}
            held = sum(self.counter.count(texts[s.item_id][s.start:s.end]) for s in page.spans)
            calls, results = [], []
            for item_id in dict.fromkeys(s.item_id for s in page.spans):
                role, ids = roles[item_id]
                (results if role == "tool" else calls).extend(ids)
            png = page.to_png()
            w, h = self.aging.size(fresh, (page.width, page.height))
            if (w, h) != (page.width, page.height):
                png = resample_png(png, (w, h))
            out.append(ContextPage(
                page_id=None, tier=fresh.name, width=w, height=h,
                vision_tokens=image_tokens(tgt, w, h), text_tokens=held,
                item_ids=tuple(dict.fromkeys(s.item_id for s in page.spans)),
                calls=tuple(calls), results=tuple(results),
                png_b64=base64.b64encode(png).decode("ascii"),
            ))
        self._pending[key] = out
        while len(self._pending) > 8:
            self._pending.popitem(last=False)
        return out

    # -- housekeeping ------------------------------------------------------

    def stats(self, *, user_id: str = "default", agent_id: str | None = None,
              session_id: str | None = None) -> StoreStats:
        """Totals under the scope (items, pages per tier, tokens, bytes)."""
        return self.store.stats(Scope(user_id, agent_id, session_id))

    def delete(self, *, item_ids: Sequence[str] | None = None, user_id: str = "default",
               agent_id: str | None = None, session_id: str | None = None,
               repage: bool = True):
        """Delete items (all under the scope, or ``item_ids``) and the pages
        left holding none; returns :class:`~optical_memory.store.Deleted`.

        A page that also held other items still shows the deleted text in
        its pixels. With ``repage`` (default) the other items of such pages
        are laid out again without it: each run of pages linked by an item
        split across them is replaced in one transaction; the new page ids
        are in ``repaged``, and they keep the old pages' place in the history
        and their age tier. Without it, or where the other
        items keep no text (``keep_text=False``: the pages are the only
        copy), those pages stay as they are and are listed in
        ``partial_pages``."""
        scope = Scope(user_id, agent_id, session_id)
        deleted = self.store.delete(scope, item_ids=item_ids)
        self._pending.clear()
        if not (repage and deleted.partial_pages):
            return deleted
        made, kept = self._repage(deleted.partial_pages, scope)
        self._pending.clear()
        return replace(deleted, partial_pages=tuple(kept), repaged=tuple(made))

    def _repage(self, page_ids: Sequence[str], scope: Scope) -> tuple[list[str], list[str]]:
        """Re-render the items of ``page_ids``. Pages linked by an item split
        across them move together (a component); each component is laid out
        on its own, takes the place of the pages it replaces and keeps their
        oldest tier. Returns (new page ids, pages left as they were: their
        items keep no text, or they span scopes)."""
        seen: set[str] = set()
        made: list[str] = []
        kept: list[str] = []
        for start in page_ids:
            if start in seen:
                continue
            pages: dict[str, PageRecord] = {}
            items: dict[str, ItemRecord] = {}
            todo = [start]
            while todo:
                page = self.store.get_page(todo.pop(), scope)
                if page is None or page.id in pages:  # (gone: removed by another writer)
                    continue
                pages[page.id] = page
                for item_id in page.item_ids:
                    rec = items.get(item_id) or self.store.get_item(item_id, page.scope)
                    if rec is None or item_id in items:
                        continue
                    items[item_id] = rec
                    todo += [p.id for p in self.store.pages_for_item(item_id, page.scope)
                             if p.id not in pages]
            seen.update(pages)
            scopes = {p.scope for p in pages.values()}
            if not items or len(scopes) > 1 or any(r.text is None for r in items.values()):
                kept += list(pages)
                continue
            recs = sorted(items.values(), key=lambda r: r.seq)
            tiers = [p.tier for p in pages.values() if p.tier in self.aging.names]
            floor = max(tiers, key=self.aging.rank) if tiers else None
            ids, _ = self._page_turns(
                scopes.pop(), recs, force=True, replaces=list(pages),
                slot=min(_page_order(p)[0] for p in pages.values()), tier_floor=floor)
            made += ids
            logger.info("re-rendered %d item(s) of %d page(s) onto %d", len(recs), len(pages),
                        len(ids))
        return made, kept

    def measure_tiers(self, sample: str | None = None, *, decode: bool = True) -> list[TierReport]:
        """Each tier's size, token cost, ratio and read-back on one sample page
        (default: a page of the synthetic conversation)."""
        if sample is None:
            from optical_memory.conversation import generate_conversation

            conv = generate_conversation(tokens=8000, seed=7)
            drafts = [self._turn_draft(m, i) for i, m in enumerate(conv.messages)]
            items = [d.render for d in drafts]
        else:
            if not isinstance(sample, str) or not sample.strip():
                raise EmptyInputError("the sample text is empty")
            items = [RenderItem("sample", "text", sample)]
        layouts = self.renderer.layout(items)
        page = self.renderer.draw(layouts[0])
        texts = {it.item_id: it.text for it in items}
        held = sum(self.counter.count(texts[s.item_id][s.start:s.end]) for s in page.spans)
        master = page.to_png()
        out = []
        for tier in self.aging.tiers:
            w, h = self.aging.size(tier, (page.width, page.height))
            png = master if (w, h) == (page.width, page.height) else resample_png(master, (w, h))
            vt = image_tokens(self.target, w, h)
            prec = secs = None
            if decode:
                from optical_memory.decode import precision
                from optical_memory.render import NEWLINE_MARKER

                res = self._decoder(self.decoder_name).decode(png)
                prec = precision(page.text, res.text, marker=NEWLINE_MARKER)
                secs = res.seconds
            out.append(TierReport(tier.name, tier.max_age, w, h, vt, held, held / vt, prec, secs))
        return out


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _check_count(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(f"{name} must be an int >= 0 (got {value!r})")


def _check_token_target(target) -> None:
    """:class:`ConfigError` unless ``target`` bills what a DeepEncoder gives:
    a deepseek-ocr mode with its newlines and separator (not ``-raw``)."""
    if target.family != "deepseek-ocr" or target.name.endswith("-raw"):
        raise ConfigError(
            f"the encoder needs a deepseek-ocr target (e.g. 'deepseek-ocr:base'), whose "
            f"token counts include the newlines and separator it outputs (got {target.name!r})"
        )


def _check_encoder(encoder: Any, target) -> str:
    """Check an ``encoder`` argument against the memory's ``target``; its
    cache name (:func:`~optical_memory.encoder.cache.encoder_name`)."""
    _check_token_target(target)
    from optical_memory.encoder import DeepEncoder
    from optical_memory.encoder.cache import encoder_name
    from optical_memory.encoder.preprocess import PIXELS_PER_TOKEN

    if not isinstance(encoder, DeepEncoder):
        raise ConfigError(f"encoder must be a DeepEncoder (got {type(encoder).__name__})")
    step = encoder.config.pixels_per_token
    if step != PIXELS_PER_TOKEN:
        raise ConfigError(f"the encoder's config gives one token per {step} px; DeepSeek-OCR "
                          f"modes need {PIXELS_PER_TOKEN} (patch 16 x compressor 4)")
    return encoder_name(encoder)


def _tensor_bytes(tensor: Any) -> int:
    return int(tensor.numel()) * int(tensor.element_size())


def _cumsum(values: Sequence[int]) -> list[int]:
    out, total = [], 0
    for v in values:
        total += v
        out.append(total)
    return out


def _content_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for j, block in enumerate(content):
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, Mapping) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            else:
                kind = block.get("type") if isinstance(block, Mapping) else type(block).__name__
                raise InputError(f"{where}.content[{j}] is a {kind!r} block; only text blocks "
                                 "can be stored")
        return "\n".join(parts)
    raise InputError(f"{where}.content must be a string or a list of text blocks "
                     f"(got {type(content).__name__})")


def _tool_call(call: Any, where: str) -> tuple[str, str, str]:
    """``(id, name, arguments)`` of an OpenAI or LangChain tool call."""
    if not isinstance(call, Mapping):
        raise InputError(f"{where} must be a dict (got {type(call).__name__})")
    fn = call.get("function")
    if isinstance(fn, Mapping):
        name, args = fn.get("name"), fn.get("arguments", "")
    else:
        name, args = call.get("name"), call.get("args", call.get("arguments", ""))
    cid = call.get("id")
    if not isinstance(cid, str) or not cid.strip():
        raise InputError(f"{where} needs an id (got {cid!r})")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where} needs a function name (got {name!r})")
    if not isinstance(args, str):
        args = json.dumps(args, ensure_ascii=False, sort_keys=True)
    return cid, name, args


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return json.loads(json.dumps(value, default=str))


def _page_order(page: PageRecord) -> tuple[int, int]:
    """Where a page sits in the history: its ``seq``, or for a re-rendered
    page the place (``slot``) of the pages it replaced."""
    slot = (page.meta.get(_META_KEY) or {}).get("slot")
    return (int(slot) if isinstance(slot, int) else page.seq, page.seq)


def _render_item(item: ItemRecord) -> RenderItem:
    text = item.text or ""
    if item.kind == "turn":
        return RenderItem(item.id, "turn", text, Turn(item.id, item.role or "user", text,
                                                      item.name, item.time).label)
    label = f"[{item.name}]" if item.name else None
    return RenderItem(item.id, "document" if item.kind == "document" else "text", text, label)


def _message(item: ItemRecord) -> dict[str, Any]:
    """The chat message a stored turn came from (tool-call dicts as given)."""
    text = item.text or ""
    n = item.meta.get("content_len", len(text))
    msg: dict[str, Any] = {"role": item.role, "content": text[:n]}
    if item.name:
        msg["name"] = item.name
    if item.meta.get("tool_calls"):
        msg["tool_calls"] = item.meta["tool_calls"]
    if item.role == "tool" and item.tool_call_ids:
        msg["tool_call_id"] = item.tool_call_ids[0]
    return msg


__all__ = [
    "AddResult",
    "CompactResult",
    "DecodedPage",
    "FALLBACK_FONT_PX",
    "OpticalMemory",
    "TierReport",
    "default_render_config",
]
