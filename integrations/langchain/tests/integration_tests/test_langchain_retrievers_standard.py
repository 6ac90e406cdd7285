"""langchain-tests' standard retriever suite on an in-memory optical memory."""
from __future__ import annotations

from functools import cache
from typing import Any

from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_optical_memory import OpticalMemoryRetriever
from optical_memory import OpticalMemory

TOPICS = ("billing", "search", "ledger", "checkout", "reporting", "scoring")


@cache
def _memory() -> OpticalMemory:
    """Six documents that all mention lighthouses, each on its own page."""
    mem = OpticalMemory(":memory:")
    for topic in TOPICS:
        mem.add_document(
            f"# Runbook: {topic}\n\nThe {topic} service keeps a lighthouse dashboard. "
            f"When the lighthouse turns amber, page the {topic} on-call engineer and "
            "check the retry queue before restarting anything.",
            title=f"{topic} runbook", user_id="standard-suite",
        )
    return mem


class TestOpticalMemoryRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[OpticalMemoryRetriever]:
        return OpticalMemoryRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": _memory(), "user_id": "standard-suite"}

    @property
    def retriever_query_example(self) -> str:
        return "lighthouse amber"
