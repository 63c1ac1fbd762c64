"""`viewer_app`: the read-only web viewer of a store (`themis view`), a Starlette application.

Routes (all GET; any other method is refused with 405, and no route writes to the store):

    /                                 runs list              /api/runs
    /runs/{run}                       a run: report, failures, a page of trials
                                                             /api/runs/{run}
                                      its trials alone:      /api/runs/{run}/trials
    /runs/{run}/cases/{case}          one case's trials      /api/runs/{run}/cases/{case}
                                      the trials it finished last
                                                             /api/runs/{run}/latest
    /compare?a=RUN&b=RUN | ?a=RUN&models=A,B                 /api/compare?...
    (the runs executing now, as their processes publish them) /api/live
    /static/{report.css,view.css,report.js,live.js}

`{run}` may be a unique prefix of a run id. A run's report rows are grouped by each `by`
parameter given (`dataset`, `model`, `prompt`, case fields; as `themis report --by`; default
dataset × model × prompt). Query parameters of trial pages: `offset`, `limit`
(at most 500), `q` (words every trial must contain), `sort` (a `trials` column), `desc=1`.
Errors answer with one line: 404 for an unknown run or case, 400 for a bad parameter, 503 while
the store is held by a running process that cannot answer the request.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from themis.app.api import viewer_data as data
from themis.app.api.viewer_cache import ViewerCache
from themis.app.render import view_live, view_pages
from themis.app.wiring import StoreLike
from themis.core.breakdown import Breakdown
from themis.core.errors import CaseNotFound, ConfigError, RunNotFound, StoreLocked, ThemisError
from themis.ports.store import StorePort
from themis.threads import SignalSafeThread

__all__ = ["Preparation", "start_warming", "viewer_app"]

POLICY = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
    "connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_STATIC = {
    "report.css": "text/css",
    "view.css": "text/css",
    "report.js": "text/javascript",
    "live.js": "text/javascript",
}
_HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _status(error: Exception) -> int:
    if isinstance(error, RunNotFound | CaseNotFound | LookupError):
        return 404
    if isinstance(error, StoreLocked):
        return 503
    return 400


def _answer(make: Callable[[Request], Any], *, as_json: bool) -> Callable[[Request], Response]:
    """An endpoint: `make(request)` is the JSON data or the page; known errors become one line."""

    def endpoint(request: Request) -> Response:
        try:
            made = make(request)
        except (ThemisError, LookupError, ValueError) as error:
            status, message = _status(error), str(error).splitlines()[0]
            if isinstance(error, StoreLocked) and (served := data.holders_viewer(error)):
                message += f" (it serves the live viewer at {served})"
            if as_json:
                return JSONResponse({"error": message}, status_code=status, headers=_HEADERS)
            title = {404: "Not found", 503: "Store in use"}.get(status, "Bad request")
            page = view_pages.message_page(title, message)
            return HTMLResponse(page, status_code=status, headers=_HEADERS)
        if as_json:
            return JSONResponse(made, headers=_HEADERS)
        return HTMLResponse(made, headers=_HEADERS)

    return endpoint


def _integer(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}: must be a whole number, got {raw!r}") from None


def _trial_query(request: Request) -> data.TrialQuery:
    return data.TrialQuery(
        offset=_integer(request, "offset", 0),
        limit=_integer(request, "limit", data.PAGE_SIZE),
        search=request.query_params.get("q", ""),
        sort=request.query_params.get("sort", "position"),
        descending=request.query_params.get("desc", "") in ("1", "true"),
    )


def _breakdown(request: Request) -> Breakdown:
    return Breakdown.of(request.query_params.getlist("by"))


def _compare_query(request: Request) -> data.CompareQuery | None:
    params = request.query_params
    run_a = params.get("a", "").strip()
    if not run_a:
        return None
    models = tuple(name.strip() for name in params.get("models", "").split(",") if name.strip())
    return data.CompareQuery(
        a=run_a,
        b=params.get("b", "").strip() or None,
        models=models,
        metric=params.get("metric") or None,
        offset=_integer(request, "offset", 0),
        limit=_integer(request, "limit", data.PAGE_SIZE),
    )


def viewer_app(
    store: StoreLike, *, warm: bool = False, written: StorePort | None = None
) -> Starlette:
    """The viewer of `store` (a DuckDB file path) as an ASGI application; serve it with uvicorn,
    or test it with Starlette's `TestClient`. With `warm`, it prepares every stored run in a
    background thread as it starts (`themis view` does), so even first pages answer at once.
    `written` is the store this process writes (the live viewer's, read through `store`): a
    run executing on it is followed from its execution's own fold (ADR 0057)."""

    cache = ViewerCache.of(store, written)

    def run_id(request: Request) -> str:
        return str(request.path_params["run"])

    def running() -> dict[str, dict[str, Any]]:
        return {run["run_id"]: run for run in data.live_data(store)["runs"]}

    def runs_page(request: Request) -> str:
        listed = data.runs_data(store, cache)
        # A run this process is about to execute publishes only once it is planned: the
        # page watches for it (and for new runs of a process holding the store).
        watch = written is not None or listed["live"] is not None
        return view_pages.runs_page(listed["runs"], listed["live"], running(), watch=watch)

    def run_page(request: Request) -> str:
        document = data.run_document(store, run_id(request), _breakdown(request), cache)
        resolved = document.report.run_id
        query = _trial_query(request)
        # `by` may repeat (a form's checkboxes); its links keep it as one comma-joined value.
        kept = {**request.query_params, "by": ",".join(request.query_params.getlist("by"))}
        live = running().get(resolved)
        return view_pages.run_page(
            document,
            data.failures_data(store, resolved, cache),
            data.runtime_changes_data(store, resolved, cache),
            data.trials_data(store, resolved, query, cache),
            {name: value for name, value in kept.items() if value},
            ""
            if live is None
            else view_live.live_panel(live, data.latest_data(store, resolved, cache)),
        )

    def trials_json(request: Request) -> dict[str, Any]:
        resolved, _ = cache.resolve(store, run_id(request))
        return data.trials_data(store, resolved, _trial_query(request), cache)

    def case(request: Request) -> dict[str, Any]:
        found = data.case_data(store, run_id(request), str(request.path_params["case"]), cache)
        if not found["trials"]:
            raise LookupError(f"run {run_id(request)[:12]} has no case {found['case_id']!r}")
        return found

    def compare_page(request: Request) -> str:
        query = _compare_query(request)
        form = view_pages.compare_form(
            data.runs_data(store, cache)["runs"], dict(request.query_params)
        )
        if query is None:
            return view_pages.compare_page(form, None, None, {})
        comparison, disagreements = data.compare_data(store, query, cache)
        return view_pages.compare_page(form, comparison, disagreements, dict(request.query_params))

    def compare_api(request: Request) -> dict[str, Any]:
        query = _compare_query(request)
        if query is None:
            raise ConfigError("compare: give run a (and run b, or models=A,B)")
        return data.compare_json(*data.compare_data(store, query, cache))

    def static(request: Request) -> Response:
        name = str(request.path_params["name"])
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        text = resources.files("themis.app.render").joinpath("assets", name).read_text("utf-8")
        return Response(text, media_type=_STATIC[name], headers=_HEADERS)

    def html(make: Callable[[Request], Any]) -> Callable[[Request], Response]:
        return _answer(make, as_json=False)

    def api(make: Callable[[Request], Any]) -> Callable[[Request], Response]:
        return _answer(make, as_json=True)

    routes = [
        Route("/", html(runs_page)),
        Route("/runs/{run}", html(run_page)),
        Route("/runs/{run}/cases/{case:path}", html(lambda r: view_pages.case_page(case(r)))),
        Route("/compare", html(compare_page)),
        Route("/api/runs", api(lambda r: data.runs_data(store, cache))),
        Route(
            "/api/runs/{run}",
            api(lambda r: data.run_data(store, run_id(r), _trial_query(r), _breakdown(r), cache)),
        ),
        Route("/api/runs/{run}/trials", api(trials_json)),
        Route("/api/runs/{run}/cases/{case:path}", api(case)),
        Route("/api/runs/{run}/latest", api(lambda r: data.latest_data(store, run_id(r), cache))),
        Route("/api/compare", api(compare_api)),
        Route("/api/live", api(lambda r: data.live_data(store))),
        Route("/static/{name}", static),
        Route("/favicon.ico", lambda r: Response(status_code=204)),  # none: no console 404
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Every comparison's statistics run on numpy, whose import costs ~0.1 s of CPU: paid
        # as the viewer starts, not by the first comparison a person asks for (ADR 0067).
        import numpy  # noqa: F401

        preparation = start_warming(app) if warm else None
        try:
            yield
        finally:
            if preparation is not None:
                preparation.stop()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.cache = cache  # what it keeps (`ViewerCache`)
    app.state.prepare = lambda stopped: data.warm(store, cache, stopped)
    return app


class Preparation(SignalSafeThread):
    """The thread preparing every run of a viewer's store (`data.warm`) while pages stay
    answerable. It is no daemon, and `stop()` ends it after the step in hand: a thread still
    inside DuckDB when the interpreter exits aborts the whole process (SIGABRT or SIGSEGV),
    so the process waits for it instead."""

    def __init__(self, prepare: Callable[[Callable[[], bool]], None]) -> None:
        super().__init__(self._prepare_all, name="themis-view-warm")
        self._prepare = prepare
        self._stopping = threading.Event()

    def _prepare_all(self) -> None:
        with suppress(ThemisError):  # a store it cannot read: the pages asking for it say why
            self._prepare(self._stopping.is_set)

    def stop(self) -> None:
        """Ask it to end after the step in hand, and wait until it has."""
        self._stopping.set()
        if self.is_alive():
            self.join()


def start_warming(app: Starlette) -> Preparation:
    """Prepare every run of the viewer `app`'s store in the background (pages stay answerable
    meanwhile; one for a run being prepared waits for its trial rows); the thread is
    `app.state.warming`, for whoever wants to wait for it or stop it."""
    preparation = Preparation(app.state.prepare)
    app.state.warming = preparation
    preparation.start()
    return preparation
