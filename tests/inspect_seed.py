"""A seeded memory and a live inspector server, shared by the inspector tests
and ``benchmarks/inspector.py``."""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Words the seeded conversation plants once (a search target).
NEEDLE = "periwinkle"


def turns(n: int, *, needle_at: int | None = None) -> list[dict[str, str]]:
    """``n`` chat turns (user / assistant alternating), a needle in turn ``needle_at``."""
    out = []
    for i in range(n):
        if i % 2 == 0:
            text = (f"Question {i // 2}: what is the status of ticket T-{1000 + i // 2}? "
                    "Please check the deployment logs and the on-call notes before replying.")
        else:
            text = (f"Ticket T-{1000 + i // 2} is resolved; the fix shipped on day {i // 2} "
                    f"after review. Build {i * 7:05d} passed all checks.")
        if i == needle_at:
            text += f" The storage room door is painted {NEEDLE} blue, code ZX-4417."
        out.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return out


def seed(mem: Any, *, user: str = "alice", session: str = "s1", n: int = 400,
         batch: int = 200, other_user: str = "bob") -> None:
    """Store ``n`` turns for ``user`` / ``session`` (plus six for ``other_user``
    / agent "helper")."""
    msgs = turns(n, needle_at=n // 5)
    for i in range(0, n, batch):
        mem.add(msgs[i:i + batch], user_id=user, session_id=session)
    mem.add(turns(6), user_id=other_user, agent_id="helper")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the inspector server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
