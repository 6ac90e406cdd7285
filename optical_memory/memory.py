"""The memory facade: add, compact (age), retrieve, decode, context.

    with OpticalMemory() as mem:                      # SQLite in $OPTICAL_MEMORY_HOME
        mem.add([{"role": "user", "content": "hi"}], user_id="alice")
        hits = mem.retrieve("hi", user_id="alice")
        ctx = mem.context(8000, user_id="alice", system="You are helpful.")

It only wires the stages of the data path, each in its own module (the map
is in ``docs/architecture.md``). Every call takes ``user_id`` / ``agent_id`` /
``session_id``: writes go to exactly that scope, reads see the user's rows
narrowed by the others, and no call ever crosses ``user_id``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import astuple
from typing import TYPE_CHECKING, Any

from optical_memory.age import AgePolicy, Legibility
from optical_memory.age.renditions import Renditions
from optical_memory.age.sweep import age_pages
from optical_memory.cache import LRUCache
from optical_memory.config import (
    CACHE_BYTES,
    DEFAULT_DECODER,
    DEFAULT_EXACT_SPANS,
    DEFAULT_KEEP_LAST,
    DEFAULT_READBACK,
    FALLBACK_FONT_PX,
    MAX_ADD_CHARS,
    MAX_K,
    MemoryConfig,
    check_count,
    default_render_config,
)
from optical_memory.context.assemble import ContextBuilder
from optical_memory.context.routing import ExactSpanPolicy
from optical_memory.decode import readback
from optical_memory.decode.base import check_decoder_name
from optical_memory.decode.readback import DecodedPage, Decoders, TierReport
from optical_memory.errors import InputError, after_commit
from optical_memory.fit.user import resolve_calibration
from optical_memory.ingest import (
    AddResult,
    check_limits,
    check_messages,
    drafts_for,
    text_draft,
    with_metadata,
)
from optical_memory.memory_items import ItemList, ItemMethods, MemoryItem, UpdateResult
from optical_memory.render import RenderConfig, Renderer, Turn
from optical_memory.render.paging import CompactResult, Pager
from optical_memory.retrieve import Hit, Ranker, SemanticIndex, hit_page, search
from optical_memory.scope import DEFAULT_USER, Scope
from optical_memory.store import NotFoundError, PageRecord, Store, open_store
from optical_memory.tokens import DEFAULT_TARGET, DEFAULT_TOKENIZER, get_counter, get_target

if TYPE_CHECKING:  # pragma: no cover - torch is optional
    from optical_memory.context import Context
    from optical_memory.encoder import DeepEncoder
    from optical_memory.fit import Calibration
    from optical_memory.ingest import Draft


class OpticalMemory(ItemMethods):
    """Long-term agent memory, old material kept as page images. ``store``: a
    :class:`~optical_memory.store.Store` (not closed by :meth:`close`), a path /
    URL, or ``None`` for ``$OPTICAL_MEMORY_HOME/memory.db``; the keywords are
    :class:`~optical_memory.config.MemoryConfig`'s fields, plus a ``ranker``
    (semantic search) and a DeepEncoder ``encoder`` (pages then keep their vision tokens per tier,
    returned by ``context(vision_tokens=True)``). One memory may be shared by
    threads without a lock, and processes may share its store (``docs/
    architecture.md``, "Threads and processes"); for asyncio code use
    :class:`~optical_memory.aio.AsyncOpticalMemory`."""

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, *,
                 target: str = DEFAULT_TARGET, tokenizer: str = DEFAULT_TOKENIZER,
                 decoder: str = DEFAULT_DECODER, render_config: RenderConfig | None = None,
                 aging: AgePolicy | None = None, keep_text: bool = True,
                 keep_last: int = DEFAULT_KEEP_LAST, ranker: Ranker | None = None,
                 decoder_options: Mapping[str, Any] | None = None,
                 encoder: DeepEncoder | None = None, readback: float = DEFAULT_READBACK,
                 cache_bytes: int = CACHE_BYTES,
                 calibration: Calibration | str | os.PathLike[str] | None = None,
                 exact_spans: str | ExactSpanPolicy = DEFAULT_EXACT_SPANS) -> None:
        config = MemoryConfig(None, target, tokenizer, decoder, keep_text, keep_last, readback,
                              render_config, aging, decoder_options or {}, cache_bytes,
                              calibration, exact_spans)
        self.config = config
        self.target = get_target(config.target)
        self.counter = get_counter(config.tokenizer)
        self.decoder_name = check_decoder_name(config.decoder)  # a typo fails here
        self.decoder_options = dict(config.decoder_options)
        #: The user's own calibration of the decoder in use (None: the shipped ones).
        self.calibration = resolve_calibration(config.calibration, self.decoder_name,
                                               self.decoder_options)
        self.render_config = config.render_config or default_render_config(
            config.target, config.decoder, readback=config.readback, calibration=self.calibration)
        self.aging, self.ranker = config.aging or AgePolicy(), ranker
        self.keep_text, self.keep_last = bool(config.keep_text), config.keep_last
        self.renderer = Renderer(self.render_config)
        self._owns_store = not isinstance(store, Store)
        self.store: Store = store if isinstance(store, Store) else open_store(store)
        self._cache = LRUCache(config.cache_bytes)
        self._vectors = SemanticIndex(self.store, ranker) if ranker is not None else None
        self.encoder, self.encoder_name, tokens = encoder, None, None
        if encoder is not None:
            from optical_memory.encoder.page_tokens import PageTokens

            tokens = PageTokens(self.store, encoder, self.target, self._cache)
            self.encoder_name = tokens.name
        self._decoders = Decoders(self.decoder_name, self.decoder_options)
        cal = self.calibration
        legibility = Legibility(self.aging, self._decoders, self.decoder_name,
                                cal.tier_readbacks(self.render_config, self.aging) if cal else None,
                                cal.label if cal else "")
        self._renditions = Renditions(self.store, self.aging, self.target, self._cache, tokens,
                                      legibility)
        self._pager = Pager(self.store, self.renderer, self.counter, self.aging, self._renditions,
                            keep_text=self.keep_text, keep_last=self.keep_last,
                            read=None if self.keep_text else self._decoders.read,
                            on_write=self._vectors.after_write if self._vectors else None)
        self._context = ContextBuilder(self.store, self.renderer, self.counter, self.aging,
                                       self._renditions, self._cache, target=self.target,
                                       keep_last=self.keep_last, keep_text=self.keep_text,
                                       decoder=self.decoder_name, tokens=tokens, ranker=ranker,
                                       exact_spans=config.exact_spans)

    @classmethod
    def from_config(cls, config: MemoryConfig | Mapping[str, Any], **kwargs: Any) -> OpticalMemory:
        """A memory built from a :class:`MemoryConfig` or a dict of its fields."""
        if isinstance(config, Mapping):
            config = MemoryConfig.from_dict(config)
        fields = {f: getattr(config, f) for f in config.__dataclass_fields__ if f != "store"}
        return cls(kwargs.pop("store", config.store), **fields, **kwargs)

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

    def add(self, messages: str | Sequence[Mapping[str, Any] | Turn | Any] | Mapping[str, Any]
            | Turn, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
            session_id: str | None = None, kind: str | None = None,
            metadata: Mapping[str, Any] | None = None) -> AddResult:
        """Store chat turns (one or a list of message dicts in OpenAI or
        LangChain shape, :class:`~optical_memory.render.Turn` objects or
        LangChain messages) or a string (``kind`` "text" or "document"), each
        item with ``metadata`` (a JSON dict, filterable). Bad input raises
        :class:`InputError` and stores nothing (:mod:`~optical_memory.ingest`)."""
        scope = Scope(user_id, agent_id, session_id)
        drafts = with_metadata(drafts_for(messages, kind, self.counter, keep_text=self.keep_text),
                               metadata)
        if isinstance(messages, str) or not self.keep_text:
            return self._add_paged(drafts, scope)
        check_limits(drafts, self.renderer)
        ids, _ = self.store.add_items([d.item for d in drafts], scope=scope)
        made: tuple[str, ...] = ()
        warnings: tuple[str, ...] = ()
        try:
            made = self.compact(**scope.as_kwargs()).page_ids
        except Exception as exc:  # the items are stored: report, never fail the add
            warnings = (after_commit("paging and aging", exc),)
        return AddResult(tuple(ids), made, sum(d.item.text_tokens for d in drafts), warnings)

    def add_document(self, text: str, *, title: str | None = None, user_id: str = DEFAULT_USER,
                     agent_id: str | None = None, session_id: str | None = None,
                     metadata: Mapping[str, Any] | None = None) -> AddResult:
        """Store a (markdown) document, rendered to pages at once."""
        draft = text_draft(text, "document", title, self.counter, keep_text=self.keep_text)
        return self._add_paged(with_metadata([draft], metadata),
                               Scope(user_id, agent_id, session_id))

    def check_messages(self, messages: Sequence[Any], *, names: Sequence[str] | None = None) -> int:
        """Check chat messages as :meth:`add` would, storing nothing; their text
        tokens. For a caller storing a long log in several adds (each at most
        :data:`~optical_memory.config.MAX_ADD_CHARS`) that must reject a bad
        log first; ``names`` name each message in errors (default ``messages[i]``)."""
        return check_messages(messages, self.counter, self.renderer, keep_text=self.keep_text,
                              names=names)

    def _add_paged(self, drafts: list[Draft], scope: Scope) -> AddResult:
        check_limits(drafts, self.renderer)
        ids, pages, warns = self._pager.page_new_items(
            [d.item for d in drafts], [d.render for d in drafts], [d.full_text for d in drafts],
            scope)
        return AddResult(tuple(ids), tuple(pages), sum(d.item.text_tokens for d in drafts), warns)

    def compact(self, *, user_id: str = DEFAULT_USER, agent_id: str | None = None,
                session_id: str | None = None, force: bool = False) -> CompactResult:
        """Page waiting turns (older than the ``keep_last`` most recent of their
        exact scope) once they fill a page (``force``: always), then move every
        page visible under the scope to the tier its age calls for."""
        scope = Scope(user_id, agent_id, session_id)
        made, paged = self._pager.page_waiting(scope, force=force)
        moved = age_pages(self.store, self.aging, self._renditions, scope)[1]
        return CompactResult(tuple(made), paged, moved)

    def retrieve(self, query: str, *, k: int = 5, user_id: str = DEFAULT_USER,
                 agent_id: str | None = None, session_id: str | None = None,
                 semantic: bool | None = None,
                 metadata: Mapping[str, Any] | None = None) -> list[Hit]:
        """Up to ``k`` matches for ``query``, best first, each on the page of its best
        passage (BM25; with a ranker fused with meaning, see
        :func:`~optical_memory.retrieve.search`); with ``metadata``, only items
        whose metadata equals each entry."""
        check_count("k", k, MAX_K)
        return search(self.store, query, Scope(user_id, agent_id, session_id), k=k,
                      keep_text=self.keep_text, ranker=self._vectors, semantic=semantic,
                      metadata=metadata)

    def decode(self, page: str | Hit, *, tier: str | None = None, decoder: str | None = None,
               user_id: str | None = None, agent_id: str | None = None,
               session_id: str | None = None) -> DecodedPage:
        """Read a page (by id, or a :class:`Hit`'s page) back to text at ``tier``
        (default its current tier) with ``decoder`` (default the memory's).
        Without ``user_id`` a hit is read in the scope it was found in."""
        if isinstance(page, Hit):
            page, found_in = hit_page(page, self.keep_last)
            if user_id is None and found_in is not None:
                user_id, agent_id, session_id = astuple(found_in)
        if not isinstance(page, str):
            raise InputError(f"page must be a page id or a Hit (got {type(page).__name__})")
        scope = Scope(user_id or DEFAULT_USER, agent_id, session_id)
        rec = self._page(page, scope)
        use_tier = rec.tier if tier is None else self.aging.tier(tier).name
        size = self.aging.size(use_tier, (rec.width, rec.height))
        return readback.read_page(rec, self._renditions.png(rec, use_tier, scope), use_tier, size,
                         self._decoders.for_page(rec, decoder))

    def tier_png(self, page_id: str, tier: str | None = None, *, user_id: str = DEFAULT_USER,
                 agent_id: str | None = None, session_id: str | None = None) -> bytes:
        """PNG of a page at ``tier`` (default: its current tier)."""
        scope = Scope(user_id, agent_id, session_id)
        rec = self._page(page_id, scope)
        return self._renditions.png(rec, rec.tier if tier is None else tier, scope)

    def _page(self, page_id: str, scope: Scope) -> PageRecord:
        rec = self.store.get_page(page_id, scope)
        if rec is None:
            raise NotFoundError(f"no page {page_id!r} under {scope}")
        return rec

    def context(self, budget_tokens: int, *, target: str | None = None,
                keep_last: int | None = None, system: str | None = None, query: str | None = None,
                user_id: str = DEFAULT_USER, agent_id: str | None = None,
                session_id: str | None = None, vision_tokens: bool = False,
                exact_spans: str | ExactSpanPolicy | None = None) -> Context:
        """Messages that fit ``budget_tokens``: the system message, the last ``keep_last`` turns
        as text, older material as page images at their age tier (oldest dropped first; InputError
        if the system message and kept turns exceed it). ``target`` re-bills the images for another
        model. ``query``: passages matching it off the fresh pages come too, re-drawn at full
        resolution or as exact text, whichever is cheaper (``accounting.query_tokens``).
        ``vision_tokens=True`` (needs an encoder): each page's token embeddings [N, D] (shared
        with the cache: copy before changing them in place). ``exact_spans``: "auto" / "always" /
        "off" (default the memory's): IDs and numbers on the pages that read back poorly given
        again as text (``accounting.exact_span_tokens``; :mod:`~optical_memory.context.routing`)."""
        return self._context.build(budget_tokens, target=target, keep_last=keep_last,
                                   system=system, scope=Scope(user_id, agent_id, session_id),
                                   vision_tokens=vision_tokens, query=query,
                                   exact_spans=exact_spans)

    def measure_tiers(self, sample: str | None = None, *, decode: bool = True) -> list[TierReport]:
        """Per tier: size, cost, ratio and read-back of a sample page (default: synthetic chat)."""
        items = readback.sample_items(sample, self.counter)
        return readback.measure_tiers(items, self.renderer, self.aging, self.target, self.counter,
                             self._decoders if decode else None, self.decoder_name,
                             legibility=self._renditions.legibility)


__all__ = ["FALLBACK_FONT_PX", "MAX_ADD_CHARS", "AddResult", "CompactResult", "DecodedPage",
           "ItemList", "MemoryItem", "OpticalMemory", "TierReport", "UpdateResult",
           "default_render_config"]
