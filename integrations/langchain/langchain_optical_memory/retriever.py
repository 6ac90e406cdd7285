"""``OpticalMemoryRetriever``: search an optical memory, get pages as Documents.

    retriever = OpticalMemoryRetriever(memory=mem, k=4, user_id="alice")
    docs = retriever.invoke("vault passphrase")
    docs[0].page_content            # the matched passage's source text
    docs[0].metadata["image_base64"]  # the page itself (PNG), for a VLM

One Document per page (several matches on one page give one Document, at
the best match's score); a match in a recent turn that no page holds yet
gives a Document of that turn's text, without an image.
"""
from __future__ import annotations

import base64
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import ConfigDict, Field

from optical_memory import Hit, InputError, OpticalMemory
from optical_memory.scope import Scope

#: How many keyword hits are fetched per Document asked for, so that hits
#: falling on the same page still leave ``k`` distinct pages.
OVERFETCH = 4


class OpticalMemoryRetriever(BaseRetriever):
    """Keyword (or, with a ranker, semantic) search over an optical memory.

    Each Document's ``page_content`` is the clean source text of the matched
    passage (:attr:`optical_memory.Hit.text`: what the page shows of the
    best-matching item, with its real line breaks, not the page's newline
    markers), or the page's read-back for a ``keep_text=False`` memory
    (``exact`` False). Metadata:

    - ``image_base64`` / ``mime_type``: the page's master PNG (absent with
      ``include_image=False`` or for a turn not yet on a page);
    - ``page_id``, ``item_id`` (best matching item), ``item_ids`` (all items
      on the page), ``scope`` (``user_id`` / ``agent_id`` / ``session_id``
      of the page), ``tier`` (age tier), ``score`` (higher is better),
      ``span`` (``[start, end]`` of the match in the item's text, or ``None``),
      ``width`` / ``height`` of the master image; ``exact`` (the text is
      the stored source, not a read-back).

    :func:`~langchain_optical_memory.tools.create_retriever_image_tool` makes
    a tool of it whose answers carry the page images.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: OpticalMemory
    k: int = Field(default=4, ge=0)
    user_id: str = "default"
    agent_id: str | None = None
    session_id: str | None = None
    include_image: bool = True

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, k: int | None = None
    ) -> list[Document]:
        want = self.k if k is None else k
        if isinstance(want, bool) or not isinstance(want, int) or want < 0:
            raise InputError(f"k must be an int >= 0 (got {want!r})")
        if not isinstance(query, str):
            raise InputError(f"query must be a string (got {type(query).__name__})")
        if want == 0 or not query.strip():
            return []
        hits = self.memory.retrieve(query, k=want * OVERFETCH, user_id=self.user_id,
                                    agent_id=self.agent_id, session_id=self.session_id)
        docs: list[Document] = []
        seen: set[str] = set()
        for hit in hits:
            key = hit.page_id or f"item:{hit.item_id}"
            if key in seen:
                continue
            seen.add(key)
            doc = self._document(hit)
            if doc is not None:
                docs.append(doc)
            if len(docs) == want:
                break
        return docs

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        return await run_in_executor(None, self._get_relevant_documents, query,
                                     run_manager=run_manager.get_sync(), k=k)

    def _document(self, hit: Hit) -> Document | None:
        scope = self._scope()
        meta: dict[str, Any] = {
            "page_id": hit.page_id, "item_id": hit.item_id, "tier": hit.tier,
            "score": float(hit.score), "span": list(hit.span) if hit.span else None,
        }
        page = hit.page
        if page is not None:
            # the matched passage's own source text (real newlines, no page markers);
            # a keep_text=False memory has only the page's read-back
            text = hit.text if hit.text is not None else (page.readback or hit.snippet)
            meta.update(item_ids=list(page.item_ids), scope=page.scope.as_kwargs(),
                        width=page.width, height=page.height,
                        exact=hit.text is not None)
            if self.include_image:
                png = page.png
                if png is None:  # a store that returned the record without pixels
                    full = self.memory.get_page(page.id, **scope.as_kwargs())
                    png = full.png if full is not None else None
                if png is not None:
                    meta["image_base64"] = base64.b64encode(png).decode("ascii")
                    meta["mime_type"] = "image/png"
            return Document(id=page.id, page_content=text, metadata=meta)
        if hit.item_id is None:
            return None
        item = self.memory.get_item(hit.item_id, **scope.as_kwargs())
        if item is None:  # deleted between search and read
            return None
        meta.update(item_ids=[item.id], scope=item.scope.as_kwargs(), exact=True)
        text = hit.text if hit.text is not None else (item.text or hit.snippet)
        return Document(id=item.id, page_content=text, metadata=meta)

    def _scope(self) -> Scope:
        return Scope(self.user_id, self.agent_id, self.session_id)


__all__ = ["OpticalMemoryRetriever"]
