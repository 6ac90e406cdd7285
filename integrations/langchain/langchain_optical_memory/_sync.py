"""Keeping a memory scope equal to a conversation, by content identity.

A conversation (the graph state's messages) changes in more ways than by
growing: ``RemoveMessage`` edits, ``SummarizationMiddleware`` replacing old
turns by a summary, trimming, a "forget this" action, a thread-less run that
reuses a list of messages. The scope must then hold exactly the messages the
conversation holds now, in order, whatever their ids or positions were.

:func:`sync_history` compares the two by *content identity*: a message is the
same turn when its stored form (role, text, name, tool calls, the call it
answers) is the same; message ids and positions play no part. The longest
prefix of the conversation found, in order, among the stored turns is kept;
every other stored turn is deleted (the memory deletes it from the pages'
pixels too and re-renders the pages it shared with other turns), and the rest
of the conversation is added. So:

- a removed message is deleted from the memory;
- a summary that replaced the oldest turns replaces them in the memory too
  (the turns after it are stored again after it, so the order stays right);
- a run that sends the same messages again stores nothing new.

This is the *re-sync* policy: the memory mirrors the conversation; history
that the conversation no longer holds is forgotten, not kept on a side
branch.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage

from langchain_optical_memory._messages import to_memory_message
from optical_memory import OpticalMemory, turn_message
from optical_memory.scope import Scope


def identity(message: Mapping[str, Any]) -> str:
    """The content identity of a stored-form chat message (a dict as
    :func:`~langchain_optical_memory._messages.to_memory_message` makes and
    :func:`optical_memory.turn_message` gives back)."""
    calls = [[c.get("id"), c.get("name"), c.get("args", {})]
             for c in message.get("tool_calls") or ()]
    return json.dumps([message.get("role"), message.get("content"), message.get("name"), calls,
                       message.get("tool_call_id")], sort_keys=True, default=str,
                      ensure_ascii=False)


@dataclass(frozen=True)
class Synced:
    """What :func:`sync_history` did: turns ``added`` and ``deleted``, the
    scope's turn ids afterwards, one per message of the conversation, in order,
    and their text tokens in all."""

    added: int
    deleted: int
    item_ids: tuple[str, ...]
    text_tokens: int = 0


def sync_history(memory: OpticalMemory, history: Sequence[BaseMessage], scope: Scope) -> Synced:
    """Make the turns stored under ``scope`` equal ``history`` (see the module doc)."""
    kwargs = scope.as_kwargs()
    stored = memory.list_turns(**kwargs)
    wanted = [to_memory_message(m) for m in history]
    keys = [identity(w) for w in wanted]
    kept: list[int] = []  # indices into stored, one per matched message
    j = 0
    for i, key in enumerate(keys):
        while j < len(stored) and not _same(stored[j], key, wanted[i]):
            j += 1
        if j == len(stored):
            break
        kept.append(j)
        j += 1
    keep = set(kept)
    gone = [rec.id for n, rec in enumerate(stored) if n not in keep]
    if gone:
        memory.delete(item_ids=gone, missing_ok=True, **kwargs)
    new = wanted[len(kept):]
    ids = [stored[n].id for n in kept]
    tokens = sum(stored[n].text_tokens for n in kept)
    if new:
        added = memory.add(new, **kwargs)
        ids += added.item_ids
        tokens += added.text_tokens
    return Synced(len(new), len(gone), tuple(ids), tokens)


def _same(rec: Any, key: str, want: Mapping[str, Any]) -> bool:
    if rec.text is None:  # a keep_text=False memory: only the role is known
        return bool(rec.role == want["role"])
    return identity(turn_message(rec)) == key


__all__ = ["Synced", "identity", "sync_history"]
