"""`themis view`: serve the read-only web viewer of a store (`themis.app.api.viewer`) on
127.0.0.1 until Ctrl-C. Starlette and uvicorn are imported only here, when the command runs."""

from __future__ import annotations

import ipaddress
import socket
from typing import Annotated

import typer

from themis.app.cli.shared import DEFAULT_STORE, StoreOption, errors, existing_store, stderr
from themis.core.errors import ConfigError, StoreLocked, ThemisError

DEFAULT_PORT = 8765
LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bound_socket(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), or a one-line `ConfigError`."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ConfigError(
            f"--host {host} --port {port}: cannot listen there ({error.strerror})"
        ) from None
    sock.listen(128)
    return sock


def view(
    store: StoreOption = DEFAULT_STORE,
    port: Annotated[
        int, typer.Option("--port", help="The port to serve on (0: any free one).")
    ] = DEFAULT_PORT,
    host: Annotated[
        str,
        typer.Option("--host", help="The address to serve on; anything but loopback is public."),
    ] = LOOPBACK,
) -> None:
    """Browse a store's runs, cases and comparisons in a local web page (read-only)."""
    with errors():
        try:
            import uvicorn

            from themis.app.api.viewer import viewer_app
            from themis.app.api.viewer_data import runs_data
        except ImportError as error:
            raise ThemisError(
                f"themis view needs the `view` extra ({error.name} is missing): "
                "pip install 'themis[view]'"
            ) from None
        if not is_loopback(host):
            stderr().print(
                f"warning: serving on {host}: anyone who can reach this address can read every "
                "run, prompt and response in the store",
                markup=False,
                soft_wrap=True,
            )
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port {port}: must be between 0 and 65535")
        existing_store(store)
        try:
            runs_data(store)
        except StoreLocked as locked:
            stderr().print(f"note: {locked}", markup=False, soft_wrap=True)
        sock = bound_socket(host, port)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{sock.getsockname()[1]}/"
        typer.echo(f"Themis viewer of {store}: {url} (Ctrl-C stops it)")
        config = uvicorn.Config(viewer_app(store, warm=True), log_level="warning", access_log=False)
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the viewer wrote nothing, so just stop
            typer.echo("viewer stopped")
        finally:
            sock.close()
