"""The MCP server driven through the SDK's in-process client: tool listing,
add → search → context (images and accounting checked against the library),
decode, the page resource, delete, errors, and scope isolation."""
from __future__ import annotations

import base64
import io
import json

import pytest
from mcp import MCPError
from mcp.types import ImageContent, TextContent
from PIL import Image

from optical_memory.conversation import generate_conversation

pytestmark = pytest.mark.anyio

TOOLS = {
    # name: (readOnlyHint, destructiveHint, idempotentHint)
    "memory_add": (False, False, False),
    "memory_search": (True, False, True),
    "memory_context": (False, False, True),  # ages pages: not read-only
    "memory_decode": (True, False, True),
    "memory_stats": (True, False, True),
    "memory_delete": (False, True, True),
}
SCOPE_ARGS = {"user_id", "user", "agent_id", "session_id", "scope"}
NEEDLE = "The vault code for the Oslo office is 7341-KESTREL."



def _conversation() -> list[dict]:
    """~3k tokens of chat with the needle in an early (paged) turn."""
    msgs = generate_conversation(tokens=3000, seed=5).messages
    return [*msgs[:3], {"role": "user", "content": NEEDLE}, *msgs[3:]]


async def _ok(client, tool: str, args: dict | None = None):
    res = await client.call_tool(tool, args or {})
    assert not res.is_error, res.content
    return res


def _png(b64: str) -> Image.Image:
    raw = base64.b64decode(b64, validate=True)
    assert raw.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(raw))
    img.load()
    return img


# -- listing ----------------------------------------------------------------


async def test_tools_have_schemas_and_honest_annotations(connect):
    async with connect() as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(TOOLS)
    for name, (ro, destructive, idempotent) in TOOLS.items():
        tool = tools[name]
        assert tool.description, name
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema and tool.output_schema["type"] == "object", name
        a = tool.annotations
        assert (a.read_only_hint, a.destructive_hint, a.idempotent_hint) == (ro, destructive,
                                                                              idempotent), name
        assert a.open_world_hint is False
        assert not SCOPE_ARGS & set(tool.input_schema.get("properties", {})), \
            f"{name} must not take a scope argument"
    ctx_in = tools["memory_context"].input_schema
    assert ctx_in["required"] == ["budget_tokens"]
    assert ctx_in["properties"]["budget_tokens"]["minimum"] == 1
    assert {"accounting", "pages", "messages"} <= set(tools["memory_context"].output_schema["properties"])


async def test_page_resource_template_is_listed(connect):
    async with connect() as client:
        templates = (await client.list_resource_templates()).resource_templates
    assert [(t.uri_template, t.mime_type) for t in templates] == [
        ("optical-memory://page/{page_id}", "image/png")]


# -- the main flow ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_add_search_context_matches_library(connect, library, mode):
    async with connect(mode=mode) as client:
        added = (await _ok(client, "memory_add", {"messages": _conversation()})).structured_content
        assert len(added["item_ids"]) == len(_conversation())
        assert added["page_ids"], "older turns are compacted onto pages"

        hits = (await _ok(client, "memory_search", {"query": "vault code Oslo", "k": 3})
                ).structured_content["hits"]
        top = hits[0]
        assert top["text"] == top["passage"] == NEEDLE and top["role"] == "user" and top["kind"] == "turn"
        assert top["page_id"] and top["page_uri"] == f"optical-memory://page/{top['page_id']}"
        assert isinstance(top["score"], float) and top["item_id"] in added["item_ids"]

        res = await _ok(client, "memory_context", {"budget_tokens": 1200})
    out = res.structured_content
    images = [c for c in res.content if isinstance(c, ImageContent)]
    assert len(images) == len(out["pages"]) == out["accounting"]["pages"] > 0
    for img, page in zip(images, out["pages"]):
        assert img.mime_type == "image/png"
        assert _png(img.data).size == (page["width"], page["height"])
    turns = [m for m in out["messages"] if m["role"] != "system"]
    assert len(turns) == out["accounting"]["kept_turns"] >= 1
    assert any(isinstance(c, TextContent) and "Recent turns" in c.text for c in res.content)

    with library() as mem:
        lib = mem.context(1200, user_id="alice")
    want = json.loads(json.dumps(lib.accounting.to_dict()))
    # context_tokens (and the ratio from it) count what the result sends, not chat messages
    for key in ("context_tokens", "ratio"):
        want.pop(key), out["accounting"].pop(key)
    assert out["accounting"] == want
    assert [p["page_id"] for p in out["pages"]] == [p.page_id for p in lib.pages]
    assert [i.data for i in images] == [p.png_b64 for p in lib.pages]
    assert turns == [m for m in lib.messages if isinstance(m["content"], str)]


async def test_context_with_system_and_target(connect):
    async with connect() as client:
        await _ok(client, "memory_add", {"messages": _conversation()})
        base = (await _ok(client, "memory_context", {"budget_tokens": 5000})).structured_content
        res = await _ok(client, "memory_context", {
            "budget_tokens": 5000, "target": "openai:gpt-4o", "system": "Be brief.", "keep_last": 2})
    out = res.structured_content
    assert out["messages"][0] == {"role": "system", "content": "Be brief."}
    assert out["accounting"]["kept_turns"] == 2
    assert out["accounting"]["target"] == "openai:gpt-4o" != base["accounting"]["target"]
    assert out["accounting"]["page_vision_tokens"] != base["accounting"]["page_vision_tokens"]


async def test_add_text_and_document(connect):
    async with connect() as client:
        text = (await _ok(client, "memory_add", {"text": "remember the zebra protocol"})
                ).structured_content
        doc = (await _ok(client, "memory_add", {"text": "# Plan\n\nShip the heron release.",
                                                 "kind": "document", "title": "Plan"})
               ).structured_content
        assert len(text["page_ids"]) == len(doc["page_ids"]) == 1  # texts are paged at once
        hit = (await _ok(client, "memory_search", {"query": "heron"})).structured_content["hits"][0]
        assert hit["kind"] == "document" and hit["page_id"] == doc["page_ids"][0]
        cut = (await _ok(client, "memory_search", {"query": "zebra", "max_chars": 8})
               ).structured_content["hits"][0]
        assert cut["text"] == "remember" and cut["text_truncated"] is True
        stats = (await _ok(client, "memory_stats")).structured_content
    assert stats["items"] == stats["pages"] == 2 and stats["user_id"] == "alice"


async def test_search_gives_the_exact_passage_of_an_aged_page(store_path):
    """A fact on a page aged to the smallest tier: the context header names
    the low-resolution pages (the library's header, counted), and memory_search
    hands back the fact's exact text as `passage`."""
    from mcp import Client

    from optical_memory import AgePolicy, OpticalMemory, Tier
    from optical_memory.render import RenderConfig
    from optical_memory_mcp import ServerConfig, create_server

    SMALL, KEEP_LAST = RenderConfig(width=512, height=512, font_size=14, newline_mode="marker"), 4
    policy = AgePolicy((Tier("base", 4, 1.0), Tier("small", 12, 0.625), Tier("tiny", None, 0.5)),
                       mode="fade")
    cfg = ServerConfig(store=store_path, user_id="alice", keep_last=KEEP_LAST)
    with OpticalMemory(store_path, render_config=SMALL, keep_last=KEEP_LAST, aging=policy) as mem:
        async with Client(create_server(cfg, memory=mem)) as client:
            await _ok(client, "memory_add", {"messages": _conversation()})
            hit = (await _ok(client, "memory_search", {"query": "vault code Oslo", "k": 1})
                   ).structured_content["hits"][0]
            res = await _ok(client, "memory_context", {"budget_tokens": 100_000})
            cut = (await _ok(client, "memory_search", {"query": "vault code Oslo", "k": 1,
                                                        "max_chars": 9})).structured_content
            tools = {t.name: t for t in (await client.list_tools()).tools}
        lib = mem.context(100_000, user_id="alice")
    assert hit["tier"] == "tiny" and hit["passage"] == NEEDLE and not hit["passage_truncated"]
    assert cut["hits"][0]["passage"] == NEEDLE[:9] and cut["hits"][0]["passage_truncated"]
    assert hit["passages"][0] == NEEDLE and cut["hits"][0]["passages"][0] == NEEDLE[:9]
    assert "exact" in tools["memory_search"].description
    assert "passage" in tools["memory_search"].output_schema["$defs"]["HitOut"]["properties"]
    header = next(c for c in res.content if isinstance(c, TextContent))
    assert header.text == lib.header and "tier tiny: page" in lib.header
    assert "recalled" in header.text
    assert res.structured_content["accounting"]["page_message_tokens"] == \
        mem.counter.count(lib.header) + 4


async def test_decode_returns_text(connect):
    async with connect() as client:
        doc = (await _ok(client, "memory_add", {
            "text": "Meeting notes: the harbour bridge opens on Tuesday at nine.",
            "kind": "document"})).structured_content
        out = (await _ok(client, "memory_decode", {"page_id": doc["page_ids"][0]})
               ).structured_content
    assert out["page_id"] == doc["page_ids"][0] and out["decoder"] == "native"
    assert "harbour" in out["text"] and out["precision"] > 0.8


async def test_page_resource_returns_the_png(connect, library):
    async with connect() as client:
        doc = (await _ok(client, "memory_add", {"text": "a page to fetch", "kind": "document"})
               ).structured_content
        res = await client.read_resource(doc["page_uris"][0])
        with pytest.raises(MCPError, match="no page"):
            await client.read_resource("optical-memory://page/0123456789abcdef")
    (content,) = res.contents
    assert content.mime_type == "image/png"
    raw = base64.b64decode(content.blob)
    with library() as mem:
        assert raw == mem.tier_png(doc["page_ids"][0], user_id="alice")
    assert _png(content.blob).size == (512, 512)


async def test_delete_is_scoped_and_idempotent(connect):
    async with connect() as client:
        a = (await _ok(client, "memory_add", {"text": "first note"})).structured_content
        await _ok(client, "memory_add", {"text": "second note"})
        gone = (await _ok(client, "memory_delete", {"item_ids": a["item_ids"]})).structured_content
        again = (await _ok(client, "memory_delete", {"item_ids": a["item_ids"]})).structured_content
        assert (gone["items"], again["items"]) == (1, 0)
        assert (gone["missing"], again["missing"]) == ([], a["item_ids"])
        assert (await _ok(client, "memory_stats")).structured_content["items"] == 1
        everything = (await _ok(client, "memory_delete", {"delete_all": True})).structured_content
        assert everything["items"] == 1
        assert (await _ok(client, "memory_stats")).structured_content["items"] == 0


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "args", "says"), [
    ("memory_context", {"budget_tokens": -5}, "greater than or equal to 1"),
    ("memory_context", {"budget_tokens": 0}, "greater than or equal to 1"),
    ("memory_context", {"budget_tokens": "lots"}, "budget_tokens"),
    ("memory_context", {}, "budget_tokens"),
    ("memory_context", {"budget_tokens": 1000, "target": "no-such-model"}, "no-such-model"),
    ("memory_context", {"budget_tokens": 1000, "keep_last": -1}, "keep_last"),
    ("memory_decode", {"page_id": "0123456789abcdef"}, "no page"),
    ("memory_decode", {"page_id": ""}, "page_id"),
    ("memory_add", {"text": ""}, "empty"),
    ("memory_add", {"text": "   \n"}, "empty"),
    ("memory_add", {}, "exactly one of"),
    ("memory_add", {"text": "x", "messages": [{"role": "user", "content": "y"}]}, "exactly one"),
    ("memory_add", {"messages": []}, "no messages"),
    ("memory_add", {"messages": [{"role": "wizard", "content": "y"}]}, "role"),
    ("memory_add", {"messages": [{"role": "user", "content": "y", "user_id": "bob"}]}, "user_id"),
    ("memory_add", {"text": "x", "title": "T"}, "document"),
    ("memory_add", {"text": "x", "kind": "poem"}, "kind"),
    ("memory_search", {"query": ""}, "query"),
    ("memory_search", {"query": "x", "k": 0}, "k"),
    ("memory_delete", {}, "item_ids"),
    ("memory_delete", {"item_ids": []}, "empty"),
    ("memory_delete", {"item_ids": ["a"], "delete_all": True}, "not both"),
    ("no_such_tool", {}, "no_such_tool"),
])
async def test_bad_arguments_are_tool_errors(connect, tool, args, says):
    async with connect() as client:
        res = await client.call_tool(tool, args)
        assert res.is_error
        (msg,) = res.content
        assert says in msg.text
        await _ok(client, "memory_stats")  # the server is still serving


async def test_budget_below_recent_turns_is_a_tool_error(connect):
    async with connect() as client:
        await _ok(client, "memory_add", {"messages": _conversation()})
        res = await client.call_tool("memory_context", {"budget_tokens": 10})
    assert res.is_error and "raise the budget" in res.content[0].text


# -- scope ----------------------------------------------------------------------


async def test_two_users_on_one_store_cannot_see_each_other(connect):
    async with connect("alice") as alice, connect("bob") as bob:
        added = (await _ok(alice, "memory_add", {"messages": _conversation()})).structured_content
        page_id = added["page_ids"][0]

        assert (await _ok(bob, "memory_search", {"query": "vault code Oslo"})
                ).structured_content["hits"] == []
        smuggled = await _ok(bob, "memory_search", {"query": "vault code Oslo", "user_id": "alice"})
        assert smuggled.structured_content["hits"] == [], "an extra user_id argument is ignored"
        assert (await _ok(bob, "memory_stats")).structured_content["items"] == 0
        ctx = await _ok(bob, "memory_context", {"budget_tokens": 5000})
        assert ctx.structured_content["accounting"]["pages"] == 0
        assert not any(isinstance(c, ImageContent) for c in ctx.content)
        decoded = await bob.call_tool("memory_decode", {"page_id": page_id})
        assert decoded.is_error and "no page" in decoded.content[0].text
        with pytest.raises(MCPError, match="no page"):
            await bob.read_resource(f"optical-memory://page/{page_id}")
        bob_del = await _ok(bob, "memory_delete", {"item_ids": added["item_ids"]})
        assert bob_del.structured_content["items"] == 0
        assert bob_del.structured_content["missing"] == added["item_ids"]
        await _ok(bob, "memory_delete", {"delete_all": True})

        hits = (await _ok(alice, "memory_search", {"query": "vault code Oslo"})
                ).structured_content["hits"]
        assert hits and hits[0]["text"] == NEEDLE
        assert (await _ok(alice, "memory_stats")).structured_content["items"] == len(added["item_ids"])


async def test_session_scope_narrows_reads(connect):
    async with connect("alice", session_id="s1") as s1, connect("alice", session_id="s2") as s2, \
            connect("alice") as everyone:
        await _ok(s1, "memory_add", {"text": "the lighthouse key is under the mat"})
        assert (await _ok(s2, "memory_search", {"query": "lighthouse"})).structured_content["hits"] == []
        assert len((await _ok(everyone, "memory_search", {"query": "lighthouse"})
                    ).structured_content["hits"]) == 1


async def test_concurrent_tool_calls_share_one_memory(connect):
    """No lock around the memory: many calls at once all succeed and every
    add is stored exactly once."""
    import anyio

    async with connect() as client:
        results: list = []

        async def add(i: int) -> None:
            text = f"concurrent note {i} quokka{i}"
            res = await _ok(client, "memory_add", {"messages": [{"role": "user", "content": text}]})
            results.append(res.structured_content["item_ids"][0])
            await _ok(client, "memory_search", {"query": f"quokka{i}", "k": 2})
            await _ok(client, "memory_context", {"budget_tokens": 4000})

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(add, i)
        stats = (await _ok(client, "memory_stats")).structured_content
    assert len(set(results)) == 12 and stats["items"] == 12
