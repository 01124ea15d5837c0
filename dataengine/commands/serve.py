"""``dataengine serve OUT``: the local, read-only web app over a build."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import click

from dataengine.commands import UserError


@click.command()
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback lets other machines read the build.",
)
def serve(out: Path, port: int, host: str) -> None:
    """Listen to build OUT in a browser: overview, browse, samples, threshold explorer (read-only)."""
    import uvicorn

    from dataengine.manifest import ManifestError
    from dataengine.serve.app import create_app

    try:
        app = create_app(out, host)
    except ManifestError as exc:
        raise UserError(str(exc)) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections made from now on wait for the server instead of being refused
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
        raise UserError(f"{host}:{port} {why}; pick another with --port") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    click.echo(f"serving {out} at http://{shown}:{bound}/ (read-only; Ctrl-C stops)", err=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
