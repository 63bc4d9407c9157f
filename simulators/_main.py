"""Shared command line of the runnable simulators: ``python -m ppx.simulators.NAME``.

Every simulator module (or package ``__main__``) ends with::

    if __name__ == "__main__":
        main("gaussian")

so that ``python -m ppx.simulators.NAME --address ADDRESS [model options]`` builds the
simulator through :mod:`ppx.simulators.registry` and serves it over ZeroMQ until killed.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import registry

__all__ = ["default_address", "main"]


def default_address(model_name: str) -> str:
    """Return the default ZeroMQ address a simulator binds to.

    Arguments:
        model_name: Short name of the simulator, e.g. ``"gaussian"``.

    Returns:
        ``ipc:///tmp/ppx-<model_name>``.
    """
    return f"ipc:///tmp/ppx-{model_name}"


def main(name: str, argv: Sequence[str] | None = None) -> None:
    """Parse the command line, build simulator ``name`` and serve it (blocks).

    Arguments:
        name: The registered simulator name; announced to the engine in the handshake
            and used for the default address.
        argv: Arguments to parse instead of ``sys.argv[1:]``.
    """
    parser = registry.parser(name)
    parser.add_argument(
        "--address",
        default=default_address(name),
        help=(
            "ZeroMQ address to bind and serve on (default: %(default)s); "
            "tcp://127.0.0.1:PORT also works"
        ),
    )
    args = parser.parse_args(argv)
    address = vars(args).pop("address")  # the rest are the simulator's own options
    try:
        fn = registry.from_arguments(name, args)
    except ValueError as error:
        parser.error(str(error))

    import ppx  # lazily: building the parser must not need the runtime

    ppx.serve(fn, address, model_name=name)
