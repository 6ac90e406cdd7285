"""The inspector's web app (Starlette + Jinja templates, no JavaScript build):
routes, the read-only / write switch, CSRF tokens and the host checks.

Every route reads through :mod:`optical_memory.inspect.views` (the memory's
public API). Deleting is off unless the app is made with ``allow_writes``;
then a delete is a GET confirmation page carrying a token (an HMAC of the
request under a per-process secret) and a POST that checks it and the
request's ``Origin``.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from optical_memory.cache import LRUCache
from optical_memory.errors import InputError, OpticalMemoryError
from optical_memory.inspect import views
from optical_memory.memory import OpticalMemory
from optical_memory.scope import DEFAULT_USER, Scope
from optical_memory.store import NotFoundError
from optical_memory.tokens import list_targets

HERE = Path(__file__).parent
#: Thumbnail width in px on the scope timeline.
THUMB_WIDTH = 160
#: Largest ``k`` / budget the forms accept.
MAX_HITS = 50
MAX_BUDGET = 2_000_000
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, allow_remote: bool) -> None:
    """:class:`InputError` for a non-loopback ``host`` unless ``allow_remote``:
    the inspector has no authentication."""
    if not allow_remote and not is_loopback(host):
        raise InputError(
            f"refusing to listen on {host!r}: the inspector has no authentication and shows "
            "everything stored. Bind 127.0.0.1 (the default), or pass --allow-remote to serve "
            "other machines anyway")


def create_app(mem: OpticalMemory, *, allow_writes: bool = False,
               niah_dirs: Sequence[str | Path] = (), host: str = "127.0.0.1",
               allow_remote: bool = False) -> Any:
    """The Starlette app over ``mem``. ``niah_dirs``: folders of NIAH results
    shown under /niah. Without ``allow_remote`` only requests whose ``Host``
    header names a loopback address are served (DNS-rebinding guard)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(["html"]))
    env.globals.update(scope_query=views.scope_query, scope_label=views.scope_label,
                       preview=views.preview, allow_writes=allow_writes, niah=bool(niah_dirs))
    roots = [Path(d) for d in niah_dirs]
    secret = secrets.token_bytes(32)
    thumbs = LRUCache(64 << 20)

    def token(*parts: str) -> str:
        return hmac.new(secret, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()

    def render(name: str, request: Request, status: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(request=request, **ctx)
        return HTMLResponse(html, status_code=status)

    def scope_of(request: Request) -> Scope:
        q = request.query_params
        return Scope(q.get("user") or DEFAULT_USER, q.get("agent") or None,
                     q.get("session") or None)

    def int_param(request: Request, name: str, default: int, lo: int, hi: int) -> int:
        raw = request.query_params.get(name, "")
        if raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{name} must be a whole number (got {raw!r})") from None
        if not lo <= value <= hi:
            raise InputError(f"{name} must be in [{lo}, {hi}] (got {value})")
        return value

    def guarded(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return fn(request)
            except OpticalMemoryError as exc:
                status = 404 if isinstance(exc, NotFoundError) else 400
                return render("error.html", request, status, error=f"{type(exc).__name__}: {exc}")
        return endpoint

    def home(request: Request) -> Response:
        return render("home.html", request, scopes=mem.scopes(), memory=repr(mem))

    def scope_page(request: Request) -> Response:
        window = None if request.query_params.get("numbers") == "all" else views.NUMBER_WINDOW
        return render("scope.html", request, t=views.timeline(mem, scope_of(request),
                                                              window=window),
                      thumb=THUMB_WIDTH)

    def page(request: Request) -> Response:
        scope = scope_of(request)
        q = request.query_params
        hit = None
        if q.get("hit_item") and q.get("hit_span"):
            a, _, b = q["hit_span"].partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise InputError(f"hit_span must be START-END (got {q['hit_span']!r})")
            hit = (q["hit_item"], (int(a), int(b)))
        pv = views.page_view(mem, request.path_params["page_id"], scope,
                             focus=q.get("item") or None, hit=hit)
        tier = q.get("tier")
        if tier is not None:
            mem.aging.tier(tier)  # a typo is an InputError
        if q.get("readback"):
            pv.readback = views.read_back(mem, pv.page.id, scope)
        return render("page.html", request, pv=pv, tier=tier, hit=hit, query=q.get("q", ""))

    def png(request: Request) -> Response:
        scope = scope_of(request)
        q = request.query_params
        page_id, tier = request.path_params["page_id"], q.get("tier") or None
        width = int_param(request, "w", 0, 0, 4096)
        data = mem.tier_png(page_id, tier, **scope.as_kwargs())
        if width:
            key = (page_id, tier, width, scope)
            data = thumbs.get_or_make(key, lambda: views.thumbnail(data, width), len)
        return Response(data, media_type="image/png",
                        headers={"Cache-Control": "private, max-age=60"})

    def search(request: Request) -> Response:
        scope = scope_of(request)
        query = request.query_params.get("q", "").strip()
        k = int_param(request, "k", 5, 1, MAX_HITS)
        hits = views.search_view(mem, query, scope, k) if query else []
        return render("search.html", request, scope=scope, query=query, k=k, hits=hits)

    def context(request: Request) -> Response:
        scope = scope_of(request)
        q = request.query_params
        targets = list_targets()
        budget = int_param(request, "budget", 8000, 1, MAX_BUDGET)
        target = q.get("target") or mem.target.name
        keep_last = int_param(request, "keep_last", mem.keep_last, 0, 100_000)
        system = q.get("system", "")
        readback = int_param(request, "readback", 0, 0, 20)
        form = {"budget": budget, "target": target, "keep_last": keep_last, "system": system,
                "readback": readback}
        cv = None
        if q.get("budget"):
            cv = views.context_view(mem, scope, budget, target=target, keep_last=keep_last,
                                    system=system or None, readback_pages=readback)
        return render("context.html", request, scope=scope, form=form, cv=cv, targets=targets)

    def niah_list(request: Request) -> Response:
        return render("niah.html", request, folders=views.niah_folders(roots), folder=None)

    def niah_one(request: Request) -> Response:
        folder = views.niah_folder(roots, request.path_params["name"])
        return render("niah.html", request, folders=None, folder=folder)

    def niah_file(request: Request) -> Response:
        path = views.resolve_under(roots, request.path_params["name"])
        if not path.is_file() or path.suffix.lower() not in views.IMAGE_SUFFIXES:
            raise InputError(f"no image {request.path_params['name']!r}")
        media = "image/svg+xml" if path.suffix.lower() == ".svg" else \
            "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
        return Response(path.read_bytes(), media_type=media)

    def delete_confirm(request: Request) -> Response:
        if not allow_writes:
            return render("error.html", request, 403,
                          error="read-only: start the inspector with --allow-writes to delete")
        scope = scope_of(request)
        item_id = request.query_params.get("item", "")
        item = mem.get_item(item_id, **scope.as_kwargs())
        if item is None:
            raise InputError(f"no item {item_id!r} under {scope}")
        return render("delete.html", request, scope=scope, item=item,
                      token=token("delete-item", item_id, views.scope_query(scope)))

    async def delete_post(request: Request) -> Response:
        if not allow_writes:
            return render("error.html", request, 403,
                          error="read-only: start the inspector with --allow-writes to delete")
        origin = request.headers.get("origin")
        if origin is not None and origin != "null":
            from urllib.parse import urlsplit

            if urlsplit(origin).netloc != request.headers.get("host"):
                return render("error.html", request, 403, error="cross-site request refused")
        form = await request.form()
        scope = scope_of(request)
        item_id = str(form.get("item", ""))
        expected = token("delete-item", item_id, views.scope_query(scope))
        if not hmac.compare_digest(str(form.get("token", "")), expected):
            return render("error.html", request, 403, error="bad or missing confirmation token")
        from starlette.concurrency import run_in_threadpool

        try:
            deleted = await run_in_threadpool(mem.delete, item_ids=[item_id], **scope.as_kwargs())
        except OpticalMemoryError as exc:
            return render("error.html", request, 400, error=f"{type(exc).__name__}: {exc}")
        thumbs.clear()
        note = (f"deleted {deleted.items} item(s), {deleted.pages} page(s); "
                f"re-rendered {len(deleted.repaged)} page(s)")
        from urllib.parse import quote

        return RedirectResponse(f"/scope?{views.scope_query(scope)}&note={quote(note)}",
                                status_code=303)

    routes = [
        Route("/", guarded(home)),
        Route("/scope", guarded(scope_page)),
        Route("/page/{page_id}", guarded(page)),
        Route("/png/{page_id}", guarded(png)),
        Route("/search", guarded(search)),
        Route("/context", guarded(context)),
        Route("/niah", guarded(niah_list)),
        Route("/niah/file/{name:path}", guarded(niah_file)),
        Route("/niah/{name:path}", guarded(niah_one)),
        Route("/delete", guarded(delete_confirm), methods=["GET"]),
        Route("/delete", delete_post, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = []
    if not allow_remote:
        hosts = ["127.0.0.1", "localhost", "[::1]", "::1"]
        if host not in hosts:
            hosts.append(host)
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.memory = mem
    return app


__all__ = ["check_host", "create_app", "is_loopback"]
