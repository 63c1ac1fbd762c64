"""`themis view`: serve the read-only web viewer of a store (`themis.app.api.viewer`) on
127.0.0.1 until Ctrl-C; and the live viewer `themis run --view` serves while it runs
(`themis.app.api.live_viewer`). Starlette and uvicorn are imported only when one is served."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from themis.app.cli.shared import DEFAULT_STORE, StoreOption, errors, existing_store, stderr
from themis.core.errors import StoreLocked

if TYPE_CHECKING:
    from themis.app.api.live_viewer import LiveViewer

DEFAULT_PORT = 8765
LOOPBACK = "127.0.0.1"

PORT_OPTION = typer.Option("--port", help="The port to serve the viewer on (0: any free one).")
HOST_OPTION = typer.Option(
    "--host", help="The address to serve the viewer on; anything but loopback is public."
)
PortOption = Annotated[int, PORT_OPTION]
HostOption = Annotated[str, HOST_OPTION]


def _say(line: str) -> None:
    stderr().print(line, markup=False, highlight=False, soft_wrap=True)


def _check_address(host: str, port: int) -> None:
    """Warn about a public `host`; refuse a `port` out of range (before anything else)."""
    from themis.app.api.serving import check_port, public_warning

    warning = public_warning(host)
    if warning is not None:
        _say(warning)
    check_port(port)


def view(
    store: StoreOption = DEFAULT_STORE,
    port: PortOption = DEFAULT_PORT,
    host: HostOption = LOOPBACK,
) -> None:
    """Browse a store's runs, cases and comparisons in a local web page (read-only)."""
    with errors():
        from themis.app.api.serving import bound_socket, server_module, url_of

        uvicorn = server_module()
        from themis.app.api.viewer import viewer_app
        from themis.app.api.viewer_data import runs_data

        _check_address(host, port)
        existing_store(store)
        try:
            live = runs_data(store)["live"]
        except StoreLocked as locked:  # held by a process that publishes nothing (yet)
            _say(f"note: {locked}{held_by_viewer(store, locked.pid)}")
        else:
            if live is not None:
                _say(
                    f"note: {store} is held by a running Themis process (PID {live['pid']}): "
                    f"the viewer shows what it publishes{held_by_viewer(store, live['pid'])}"
                )
        sock = bound_socket(host, port)
        url = url_of(sock)
        typer.echo(f"Themis viewer of {store}: {url} (Ctrl-C stops it)")
        config = uvicorn.Config(viewer_app(store, warm=True), log_level="warning", access_log=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the viewer wrote nothing, so just stop
            typer.echo("viewer stopped")
        finally:
            sock.close()


def held_by_viewer(store: Path, pid: int) -> str:
    """`; it serves a live viewer at URL` when process `pid`, holding `store`, serves one."""
    from themis.app.wiring import viewer_notice

    url = viewer_notice(store).announced(pid)
    return "" if url is None else f"; it serves the live viewer at {url}"


@contextmanager
def live_serving(store: Path, host: str, port: int) -> Iterator[LiveViewer]:
    """`themis run --view`: the live viewer of `store` served while the block runs."""
    from themis.app.api.live_viewer import live_viewer

    _check_address(host, port)
    with live_viewer(store, host=host, port=port) as viewer:
        _say(f"viewer: {viewer.url} shows this run live (read-only)")
        yield viewer


def linger(viewer: LiveViewer) -> None:
    """After the run: release the store and keep serving until Ctrl-C, saying so."""
    viewer.release()
    viewer.wait(
        ready=lambda: _say(
            f"run finished: the viewer still serves {viewer.url} (store released); Ctrl-C stops it"
        )
    )
    _say("viewer stopped")
