"""``ppx keys FOLDER``: make the CurveZMQ key pairs for serving beyond loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["keys"]


def keys(
    folder: Annotated[Path, typer.Argument(help="where to write the keys (created)")],
) -> None:
    """Make a server and a client CURVE key pair; print how to serve and connect with them."""
    from ppx.protocol.curve import CLIENTS_ENV, SECRET_ENV, SERVER_KEY_ENV, generate_keys

    try:
        paths = generate_keys(folder)
    except (FileExistsError, OSError) as error:
        raise typer.BadParameter(str(error), param_hint="FOLDER") from None
    clients = folder / "clients"
    clients.mkdir(exist_ok=True)
    (clients / "client.key").write_bytes(paths["client.key"].read_bytes())
    typer.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
    typer.echo(f"admitted clients (public keys): {clients}/")
    typer.echo("serve beyond loopback (on the simulator's machine):")
    typer.echo(
        f"  ppx serve NAME --address tcp://*:5555 --allow-remote "
        f"--curve-secret {paths['server.key_secret']} --curve-clients {clients}"
    )
    typer.echo("connect (on the engine's machine; copy client.key_secret and server.key there):")
    typer.echo(
        f"  export {SECRET_ENV}={paths['client.key_secret']} {SERVER_KEY_ENV}={paths['server.key']}"
    )
    typer.echo(f"  (a C++ or Python server reads {SECRET_ENV} and {CLIENTS_ENV} the same way)")
