"""Compress a 200-turn agent conversation before a chat model sees it.

Runs offline: the chat model is langchain-core's GenericFakeChatModel and
the conversation is optical-memory's synthetic agent session.

    python integrations/langchain/examples/compress_chat.py
"""
from __future__ import annotations

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, convert_to_messages
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from langchain_optical_memory import compress_messages
from optical_memory import generate_conversation


def main() -> None:
    history = convert_to_messages(generate_conversation(turns=200, seed=3).messages)
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a careful operations assistant."), MessagesPlaceholder("history")]
    )
    seen = []
    model = GenericFakeChatModel(messages=iter([AIMessage("Understood.")]))
    chain = prompt | compress_messages(max_tokens=8000, keep_last=8,
                                       on_accounting=seen.append) | model
    reply = chain.invoke({"history": history})
    acc = seen[0]
    print(f"model reply: {reply.content}")
    print(f"{len(history)} turns, tokenizer {acc.tokenizer}, target {acc.target}")
    print(f"without compression: {acc.history_text_tokens:>6} input tokens")
    print(f"with compression:    {acc.context_tokens:>6} input tokens "
          f"({acc.pages} page images + {acc.kept_turns} recent turns as text)")
    print(f"saved: {acc.history_text_tokens - acc.context_tokens} tokens, "
          f"{acc.ratio:.1f}x fewer")


if __name__ == "__main__":
    main()
