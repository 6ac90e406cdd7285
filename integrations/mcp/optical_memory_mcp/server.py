"""The MCP server: optical-memory's public API as MCP tools and a page resource.

    from optical_memory_mcp import ServerConfig, create_server

    server = create_server(ServerConfig(store="memory.db", user_id="alice"))
    server.run()                      # stdio; or server.run("streamable-http", ...)

Tools (all scoped to the server's configured user / agent / session, none
takes a user id): ``memory_add``, ``memory_search``, ``memory_context``,
``memory_decode``, ``memory_stats``, ``memory_delete``. Resource template:
``optical-memory://page/{page_id}``, the page's PNG at its current age tier.

Errors: every error reaches the client as a message. The library's typed
errors (:class:`~optical_memory.OpticalMemoryError`: bad input, unknown page or
target, missing decoder) become MCP tool errors (``isError: true`` with the
library's message) or, for the resource, an MCP error; anything unexpected
(``RecursionError``, ``OverflowError``, ``OSError``...) becomes a tool error
``<Type>: <message>`` (its traceback is logged at debug level), never the SDK's
bare "Error executing tool". Argument-schema violations are rejected by the
SDK the same way; booleans are strict (``"yes"`` is not ``true``).

The memory is opened on first use (so the handshake is instant) and closed when
the server shuts down, after the calls in flight finish. Calls run concurrently:
the SDK runs sync tools in worker threads, and one
:class:`~optical_memory.OpticalMemory` is safe to share between threads (its
caches are one thread-safe LRU and the SQLite store serialises its connection;
tests/test_threads.py), so no lock is held around the memory.
"""
import functools
import inspect
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceError,
    ResourceNotFoundError,
    ToolError,
)
from mcp.shared.exceptions import MCPError
from mcp.types import (
    METHOD_NOT_FOUND,
    CallToolResult,
    ToolAnnotations,
)
from pydantic import Field, StrictBool

from optical_memory.errors import OpticalMemoryError
from optical_memory.memory import OpticalMemory
from optical_memory.store import NotFoundError
from optical_memory_mcp import sent
from optical_memory_mcp._version import __version__
from optical_memory_mcp.config import SERVER_NAME, ServerConfig
from optical_memory_mcp.models import (
    PAGE_URI_TEMPLATE,
    AddOut,
    ChatMessage,
    ContextOut,
    DecodedOut,
    DeletedOut,
    HitOut,
    SearchOut,
    StatsOut,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: Most hits one search may return.
MAX_HITS = 50
#: Longest error message sent to a client (characters); the rest is cut.
MAX_ERROR_CHARS = 1000

INSTRUCTIONS = """\
Long-term memory that keeps old conversation as page images (a vision model reads a page \
with ~10x fewer tokens than its text). Store turns or texts with memory_add; find them with \
memory_search (keyword, BM25; each hit's `passage` is the exact text, for pages too small \
to read); call memory_context with your token budget to get the history \
as page images plus the recent turns as text, with the token accounting; read a page back to \
text with memory_decode. All data is scoped to the user this server was started for."""

_READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                        open_world_hint=False)


class MemoryHandle:
    """The server's :class:`OpticalMemory`, opened lazily and shared by calls.

    A memory passed in is used as is and never closed here (its owner closes
    it); otherwise one is opened from the config on first use and closed by
    :meth:`close` (it reopens on the next use).
    """

    def __init__(self, config: ServerConfig, memory: OpticalMemory | None = None) -> None:
        self.config = config
        self._memory = memory
        self._owned = memory is None
        self._lock = threading.Lock()  # guards opening, closing and the count below
        self._idle = threading.Condition(self._lock)
        self._active = 0

    def _acquire(self) -> OpticalMemory:
        with self._lock:
            if self._memory is None:
                c = self.config
                self._memory = OpticalMemory(c.store, target=c.target, decoder=c.decoder,
                                             tokenizer=c.tokenizer, keep_last=c.keep_last)
                logger.info("opened %r for %s", self._memory, c.scope)
            self._active += 1
            return self._memory

    def _release(self) -> None:
        with self._lock:
            self._active -= 1
            self._idle.notify_all()

    def call(self, fn: Callable[[OpticalMemory], _T]) -> _T:
        """Run ``fn(memory)`` (concurrently with other calls); every error
        becomes a tool error with a message (see :func:`tool_error`)."""
        try:
            memory = self._acquire()
        except Exception as exc:
            raise tool_error(exc) from exc
        try:
            return fn(memory)
        except (ToolError, MCPError):
            raise
        except Exception as exc:
            raise tool_error(exc) from exc
        finally:
            self._release()

    def close(self) -> None:
        """Close an owned memory once no call is using it."""
        with self._lock:
            while self._active:
                self._idle.wait()
            if self._owned and self._memory is not None:
                self._memory.close()
                self._memory = None


def _cut(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tool_error(exc: Exception) -> ToolError:
    """The :class:`ToolError` a client sees for ``exc``: the library's message
    for its typed errors, ``<Type>: <message>`` for anything else (whose
    traceback is logged at debug level)."""
    try:
        message = str(exc)
    except Exception:
        message = ""
    if isinstance(exc, OpticalMemoryError):
        return ToolError(_cut(message or type(exc).__name__))
    logger.debug("unexpected error in a tool call", exc_info=exc)
    name = type(exc).__name__
    return ToolError(_cut(f"{name}: {message}" if message else name))


def _messages(fn: Callable[..., _T]) -> Callable[..., _T]:
    """Tool functions: an error outside :meth:`MemoryHandle.call` (building
    the result, converting arguments) also reaches the client as a message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except (ToolError, MCPError):
            raise
        except Exception as exc:
            raise tool_error(exc) from exc

    # the description a client shows: the docstring without its indentation
    wrapper.__doc__ = inspect.cleandoc(fn.__doc__ or "")
    return wrapper


async def no_prompts(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: this server has no prompts, so it neither advertises
    the prompts capability (the SDK's ``MCPServer`` always does) nor answers
    ``prompts/*`` requests (method not found, as for any unserved method)."""
    if ctx.method.startswith("prompts/"):
        raise MCPError(METHOD_NOT_FOUND, f"Method not found: {ctx.method}")
    result = await call_next(ctx)
    caps = getattr(result, "capabilities", None)
    if caps is not None and getattr(caps, "prompts", None) is not None:
        caps.prompts = None
    elif isinstance(result, dict) and isinstance(result.get("capabilities"), dict):
        result["capabilities"].pop("prompts", None)
    return result


def create_server(config: ServerConfig, *, memory: OpticalMemory | None = None,
                  log_level: LogLevel = "WARNING") -> MCPServer:
    """An MCP server over one memory, scoped to ``config``'s user / agent / session.

    ``memory``: an already-open memory to serve (e.g. with a custom render
    config); by default one is opened from ``config`` on first use.
    ``log_level``: the SDK's logging (to stderr).
    """
    handle = MemoryHandle(config, memory)
    scope = config.scope_kwargs()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[MemoryHandle]:
        try:
            yield handle
        finally:
            handle.close()

    server = MCPServer(SERVER_NAME, title="Optical memory", instructions=INSTRUCTIONS,
                       version=__version__, lifespan=lifespan, log_level=log_level)
    server.middleware.append(no_prompts)

    # -- tools -------------------------------------------------------------

    @server.tool(
        title="Remember",
        annotations=ToolAnnotations(title="Remember", read_only_hint=False,
                                    destructive_hint=False, idempotent_hint=False,
                                    open_world_hint=False),
    )
    @_messages
    def memory_add(
        text: Annotated[str | None, Field(
            description="A text or document to remember (give this or `messages`).")] = None,
        messages: Annotated[list[ChatMessage] | None, Field(
            description="Chat turns to remember, oldest first (give this or `text`).")] = None,
        kind: Annotated[Literal["text", "document"], Field(
            description="For `text`: 'text' (default) or 'document' (rendered to pages at once)."
        )] = "text",
        title: Annotated[str | None, Field(
            description="Title of a document (kind='document' only).")] = None,
    ) -> AddOut:
        """Store chat turns or a text in memory. Recent turns stay text; older ones are laid
        onto page images as they age. Returns the stored item ids and any pages made."""
        if (text is None) == (messages is None):
            raise ToolError("give exactly one of `text` or `messages` "
                            f"(got {'both' if text is not None else 'neither'})")
        if messages is not None:
            if kind != "text" or title is not None:
                raise ToolError("`kind` and `title` apply to `text` only, not to `messages`")
            turns = [m.to_library() for m in messages]
            return AddOut.of(handle.call(lambda m: m.add(turns, **scope)))
        assert text is not None
        if kind == "document":
            return AddOut.of(handle.call(lambda m: m.add_document(text, title=title, **scope)))
        if title is not None:
            raise ToolError(f"`title` needs kind='document' (got kind={kind!r})")
        return AddOut.of(handle.call(lambda m: m.add(text, kind="text", **scope)))

    @server.tool(title="Search memory",
                 annotations=ToolAnnotations(title="Search memory", **_hints(_READ)))
    @_messages
    def memory_search(
        query: Annotated[str, Field(min_length=1, description="Keywords to look for.")],
        k: Annotated[int, Field(ge=1, le=MAX_HITS, description="Most hits to return.")] = 5,
        max_chars: Annotated[int, Field(
            ge=0, description="Cut each hit's item text and passage to this many characters "
                        "(0: neither, snippets only).")] = 2000,
    ) -> SearchOut:
        """Keyword search (BM25) over everything remembered. Each hit names its item, the page
        holding it (read it with memory_decode, or fetch its image as a resource) and its age
        tier, a snippet, the item's text and `passage`: the exact source text of the matching
        passage, for when a page image (an old, low-resolution tier) is too small to read."""

        def run(mem: OpticalMemory) -> SearchOut:
            hits = []
            for h in mem.retrieve(query, k=k, **scope):
                item = mem.get_item(h.item_id, **scope) if h.item_id else None
                full = item.text if item is not None else None
                cut = full[:max_chars] if full is not None and max_chars else None
                hits.append(HitOut(
                    item_id=h.item_id, page_id=h.page_id,
                    page_uri=PAGE_URI_TEMPLATE.format(page_id=h.page_id) if h.page_id else None,
                    tier=h.tier, score=h.score, snippet=h.snippet, text=cut,
                    text_truncated=full is not None and len(full) > max_chars,
                    passage=h.text[:max_chars] if h.text is not None and max_chars else None,
                    passage_truncated=h.text is not None and len(h.text) > max_chars,
                    passages=[p[:max_chars] for p in h.passages] if max_chars else [],
                    kind=item.kind if item is not None else None,
                    role=item.role if item is not None else None,
                    span=list(h.span) if h.span is not None else None,
                ))
            return SearchOut(query=query, hits=hits)

        return handle.call(run)

    @server.tool(title="Memory as context",
                 annotations=ToolAnnotations(title="Memory as context", read_only_hint=False,
                                             destructive_hint=False, idempotent_hint=True,
                                             open_world_hint=False))
    @_messages
    def memory_context(
        budget_tokens: Annotated[int, Field(
            ge=1, description="Token budget the context must fit (text + vision tokens).")],
        target: Annotated[str | None, Field(
            description="Vision model to bill the pages for (default: the server's target).")
        ] = None,
        keep_last: Annotated[int | None, Field(
            ge=0, description="Recent turns to give as text (default: the server's).")] = None,
        system: Annotated[str | None, Field(
            description="A system message to count in the budget.")] = None,
    ) -> Annotated[CallToolResult, ContextOut]:
        """The remembered history fitted to a token budget: older material as page images
        (image content, oldest first, after a header naming the low-resolution ones, whose
        exact text memory_search returns), the recent turns as compact JSON text, and the token
        accounting (history as text vs. this context). `context_tokens` is exactly what the
        result's content costs: the tokenizer's count of its text parts plus the target's vision
        tokens for its images (plus the system message, if given, as a chat message). Pages are
        moved to the tier their age calls for on the way (the library's aging; no memory content
        changes). The oldest pages are left out when the budget is short."""
        return handle.call(lambda m: sent.context_result(
            m, budget_tokens, target=target, keep_last=keep_last, system=system, scope=scope))

    @server.tool(title="Read a page",
                 annotations=ToolAnnotations(title="Read a page", **_hints(_READ)))
    @_messages
    def memory_decode(
        page_id: Annotated[str, Field(
            min_length=1, description="A page id (from search or context).")],
        tier: Annotated[str | None, Field(
            description="Age tier to read it at (default: its current tier).")] = None,
    ) -> DecodedOut:
        """Read a stored page back to text with the server's decoder (OCR), with its precision
        against the stored text."""
        return DecodedOut.of(handle.call(lambda m: m.decode(page_id, tier=tier, **scope)))

    @server.tool(title="Memory statistics",
                 annotations=ToolAnnotations(title="Memory statistics", **_hints(_READ)))
    @_messages
    def memory_stats() -> StatsOut:
        """Totals in this memory: items, pages per age tier, text tokens, bytes."""
        return handle.call(lambda m: StatsOut.of(m.stats(**scope), scope=scope,
                                                 target=m.target.name))

    @server.tool(
        title="Forget",
        annotations=ToolAnnotations(title="Forget", read_only_hint=False, destructive_hint=True,
                                    idempotent_hint=True, open_world_hint=False),
    )
    @_messages
    def memory_delete(
        item_ids: Annotated[list[str] | None, Field(
            description="Items to delete (ids from memory_add or memory_search).")] = None,
        delete_all: Annotated[StrictBool, Field(
            description="Delete everything in this memory's scope instead (JSON true only; "
                        "a string such as \"yes\" is refused).")] = False,
    ) -> DeletedOut:
        """Delete items, and the pages left holding none; pages that also held
        other items are laid out again without the deleted text. Give
        `item_ids`, or `delete_all: true` to forget everything in this
        server's scope."""
        if (item_ids is None) == (not delete_all):
            raise ToolError("give `item_ids`, or `delete_all: true` (not both, not neither)")
        if item_ids is not None and not item_ids:
            raise ToolError("item_ids is empty; give at least one id")
        return DeletedOut.of(handle.call(  # idempotent: ids already gone are listed, not errors
            lambda m: m.delete(item_ids=item_ids, missing_ok=True, **scope)))

    # -- resources -----------------------------------------------------------

    @server.resource(PAGE_URI_TEMPLATE, name="page", title="Memory page",
                     description="A stored page as PNG, at its current age tier.",
                     mime_type="image/png")
    def page_png(page_id: str) -> bytes:
        try:
            return handle.call(lambda m: m.tier_png(page_id, **scope))
        except ToolError as exc:
            if isinstance(exc.__cause__, NotFoundError):
                raise ResourceNotFoundError(str(exc)) from exc.__cause__
            raise ResourceError(str(exc)) from exc

    return server


def _hints(a: ToolAnnotations) -> dict[str, Any]:
    return a.model_dump(exclude={"title"})


__all__ = ["INSTRUCTIONS", "MAX_ERROR_CHARS", "MAX_HITS", "MemoryHandle", "create_server",
           "tool_error"]
