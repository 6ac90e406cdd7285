"""Pydantic models of the tools' inputs and outputs.

The SDK derives each tool's ``inputSchema`` / ``outputSchema`` from these, so
field descriptions here are what an MCP client (and its model) reads.
Converters from the library's dataclasses sit next to the models they fill.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optical_memory.context import Accounting, ContextPage
from optical_memory.memory import AddResult, DecodedPage
from optical_memory.scope import ScopeKwargs
from optical_memory.store import Deleted, StoreStats

#: URI template of the page resource; ``{page_id}`` is a stored page id.
PAGE_URI_TEMPLATE = "optical-memory://page/{page_id}"


def page_uri(page_id: str) -> str:
    """The resource URI of a stored page."""
    return PAGE_URI_TEMPLATE.format(page_id=page_id)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


class ToolCall(BaseModel):
    """A tool call an assistant turn made (flat shape)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="The call id a later tool message answers.")
    name: str = Field(min_length=1, description="Function name.")
    arguments: str | dict[str, Any] = Field(
        default="", description="Arguments, as a JSON string or an object.")


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="Function name.")
    arguments: str | dict[str, Any] = Field(
        default="", description="Arguments, as a JSON string or an object.")


class OpenAIToolCall(BaseModel):
    """A tool call in the OpenAI chat shape."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="The call id a later tool message answers.")
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One chat turn to remember."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant", "system", "tool", "developer", "function"]
    content: str = Field(default="", description="The turn's text.")
    name: str | None = Field(default=None, description="Speaker or tool name.")
    time: str | None = Field(
        default=None, description="When it was said (free text, e.g. ISO 8601).")
    tool_calls: list[ToolCall | OpenAIToolCall] | None = Field(
        default=None, description="Tool calls made by an assistant turn.")
    tool_call_id: str | None = Field(
        default=None, description="For role 'tool': the id of the call this result answers.")

    def to_library(self) -> dict[str, Any]:
        """The message dict :meth:`optical_memory.OpticalMemory.add` takes."""
        out = self.model_dump(exclude_none=True, exclude={"tool_calls"})
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        return out


# --------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------


class AddOut(_Out):
    """What one ``memory_add`` stored."""

    item_ids: list[str] = Field(description="Ids of the stored items, in input order.")
    page_ids: list[str] = Field(
        description="Pages made by this call (documents, and older turns compacted because of it).")
    page_uris: list[str] = Field(description="Resource URIs of those pages (PNG).")
    text_tokens: int = Field(description="Text tokens of the stored items.")

    @classmethod
    def of(cls, res: AddResult) -> AddOut:
        return cls(item_ids=list(res.item_ids), page_ids=list(res.page_ids),
                   page_uris=[page_uri(p) for p in res.page_ids], text_tokens=res.text_tokens)


class HitOut(_Out):
    """One search match."""

    item_id: str | None = Field(description="Matching item (None for a match in a page read-back).")
    page_id: str | None = Field(
        description="Page holding the match; None while it is a recent text turn.")
    page_uri: str | None = Field(description="Resource URI of that page (PNG).")
    tier: str | None = Field(description="The page's age tier.")
    score: float = Field(description="Relevance, higher is better; comparable within one search.")
    snippet: str = Field(description="A short excerpt around the match.")
    text: str | None = Field(description="The item's stored text (cut to max_chars).")
    text_truncated: bool = Field(description="True when `text` was cut.")
    passage: str | None = Field(default=None, description=(
        "The exact source text of the matching passage (what the page shows of the item), cut "
        "to max_chars: read this when the page image is too small to read. None for a match "
        "in a page read-back or with max_chars=0."))
    passage_truncated: bool = Field(default=False, description="True when `passage` was cut.")
    passages: list[str] = Field(default_factory=list, description=(
        "The page's best passages for the query, best first (the first is `passage`), each cut "
        "to max_chars: on a long document the one that answers is often not the first."))
    kind: str | None = Field(description="'turn', 'document' or 'text'.")
    role: str | None = Field(description="Chat role, for a turn.")
    span: list[int] | None = Field(
        description="[start, end) of the first matching word in the item text.")


class SearchOut(_Out):
    query: str
    hits: list[HitOut]


class TierRowOut(_Out):
    pages: int
    text_tokens: int
    vision_tokens: int
    readback: float | None = Field(
        default=None, description="Mean read-back precision of these pages by the memory's "
                                  "decoder (None: unknown).")
    readback_source: str = Field(
        default="", description="'measured' (per page, at write time), 'calibrated' (the "
                                "shipped tier calibration) or 'mixed'.")


class AccountingOut(_Out):
    """What the context costs against the whole history as text (tokens)."""

    tokenizer: str
    target: str
    decoder: str
    budget_tokens: int
    history_text_tokens: int = Field(description="System message + every stored item, as text.")
    context_tokens: int = Field(
        description="Exactly what the result's content costs (never above the budget): the "
                    "tokenizer's count of its text parts + the target's vision tokens of its "
                    "images (+ the system message as a chat message, when given).")
    text_tokens_kept: int = Field(description="System message + recent turns kept as text.")
    kept_turns: int
    page_vision_tokens: int = Field(description="Vision tokens of the pages in the context.")
    page_text_tokens: int = Field(description="Text tokens those pages hold.")
    page_message_tokens: int = Field(description="The page message's framing.")
    pages: int
    per_tier: dict[str, TierRowOut]
    dropped_pages: int = Field(description="Oldest pages left out for the budget (still stored).")
    dropped_text_tokens: int = Field(description="Text tokens those dropped pages hold.")
    dropped_items: int = Field(description="Items on the dropped pages.")
    kept_image_tokens: int = Field(description="Vision tokens of images in the recent turns "
                                               "(0 here: the memory stores text).")
    carried_text_tokens: int = Field(
        description="The history the context carries, as text (history less the dropped "
                    "items as text messages).")
    ratio: float = Field(description="carried_text_tokens / context_tokens (dropped history "
                                     "is not counted as compressed).")
    page_ratio: float = Field(description="page_text_tokens / page_vision_tokens.")
    min_readback: float | None = Field(
        default=None, description="The age policy's legibility floor.")
    legible: TierRowOut | None = Field(
        default=None, description="Kept pages reading back at or above the floor.")
    faded: TierRowOut | None = Field(
        default=None, description="Kept pages reading back below the floor, or unknown.")
    query_tokens: int = Field(
        default=0, description="What a query's passages cost (0 here: memory_context takes no "
                               "query).")
    query_mode: str = Field(default="", description="How a query's passages came: image, text, "
                                                    "none; empty without a query.")
    exact_span_tokens: int = Field(
        default=0, description="What the exact-value block (IDs and numbers that read back "
                               "poorly, as text) costs (0 here: memory_context adds none).")
    exact_spans: int = Field(default=0, description="Values in the exact-value block.")

    @classmethod
    def of(cls, acc: Accounting) -> AccountingOut:
        return cls.model_validate(acc.to_dict())


class ContextPageOut(_Out):
    """A page in the context (its image is in the tool result's content)."""

    page_id: str | None = Field(
        description="Stored page id; None for a pending page (old turns not yet compacted).")
    page_uri: str | None
    tier: str
    width: int
    height: int
    vision_tokens: int
    text_tokens: int
    item_ids: list[str]

    @classmethod
    def of(cls, page: ContextPage) -> ContextPageOut:
        return cls(page_id=page.page_id,
                   page_uri=page_uri(page.page_id) if page.page_id else None,
                   tier=page.tier, width=page.width, height=page.height,
                   vision_tokens=page.vision_tokens, text_tokens=page.text_tokens,
                   item_ids=list(page.item_ids))


class ContextOut(_Out):
    """Structured part of ``memory_context``: the page images themselves are
    the result's image content, in the order of ``pages``."""

    messages: list[dict[str, Any]] = Field(
        description="Text part of the context: the system message (if given) and the recent "
                    "turns, as chat messages, oldest first.")
    pages: list[ContextPageOut] = Field(description="Pages given as images, oldest first.")
    accounting: AccountingOut


class DecodedOut(_Out):
    """A page read back to text."""

    page_id: str
    tier: str
    width: int
    height: int
    text: str
    decoder: str
    precision: float | None = Field(
        description="1 - edit distance / length against the page's stored text (None without it).")
    seconds: float

    @classmethod
    def of(cls, d: DecodedPage) -> DecodedOut:
        return cls(page_id=d.page_id, tier=d.tier, width=d.width, height=d.height, text=d.text,
                   decoder=d.decoder, precision=d.precision, seconds=round(d.seconds, 4))


class StatsOut(_Out):
    """Totals under this server's scope."""

    user_id: str
    agent_id: str | None
    session_id: str | None
    target: str
    items: int
    pages: int
    renditions: int
    text_tokens: int
    page_png_bytes: int
    rendition_bytes: int
    tiers: dict[str, int] = Field(description="Pages per age tier.")

    @classmethod
    def of(cls, st: StoreStats, *, scope: ScopeKwargs, target: str) -> StatsOut:
        return cls(**scope, target=target, items=st.items, pages=st.pages,
                   renditions=st.renditions, text_tokens=st.text_tokens,
                   page_png_bytes=st.page_png_bytes, rendition_bytes=st.rendition_bytes,
                   tiers=dict(st.tiers))


class DeletedOut(_Out):
    items: int = Field(description="Items deleted.")
    pages: int = Field(description="Pages deleted (they held only deleted items).")
    partial_pages: list[str] = Field(
        description="Pages kept as they were although they also show deleted text (only "
                    "where nothing could be re-rendered; normally empty).")
    repaged: list[str] = Field(
        description="New pages: the other items of pages that showed deleted text, laid "
                    "out again without it.")
    replaced: list[str] = Field(
        default_factory=list,
        description="Pages the new ones took the place of (the pages that showed deleted "
                    "text and any page linked to them by a split item); they are gone.")
    missing: list[str] = Field(
        default_factory=list,
        description="Ids given that are not stored in this server's scope (already deleted, "
                    "or never added here): nothing was deleted for them.")

    @classmethod
    def of(cls, d: Deleted) -> DeletedOut:
        return cls(items=d.items, pages=d.pages, partial_pages=list(d.partial_pages),
                   repaged=list(d.repaged), replaced=list(d.replaced),
                   missing=list(d.missing))


__all__ = [
    "PAGE_URI_TEMPLATE",
    "AccountingOut",
    "AddOut",
    "ChatMessage",
    "ContextOut",
    "ContextPageOut",
    "DecodedOut",
    "DeletedOut",
    "FunctionCall",
    "HitOut",
    "OpenAIToolCall",
    "SearchOut",
    "StatsOut",
    "TierRowOut",
    "ToolCall",
    "page_uri",
]
