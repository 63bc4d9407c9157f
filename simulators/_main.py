"""Shared command line for the runnable PPX simulators in :mod:`ppx.simulators`.

Every simulator module ends with::

    if __name__ == "__main__":
        main(_factory, model_name="gaussian", description=__doc__, add_arguments=_add_arguments)

so that ``python -m ppx.simulators.NAME --address ADDRESS [model options]`` builds the
simulator from the parsed options and serves it over ZeroMQ until killed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["default_address", "main"]


def default_address(model_name: str) -> str:
    """Return the default ZeroMQ address a simulator binds to.

    Args:
        model_name: Short name of the simulator, e.g. ``"gaussian"``.

    Returns:
        ``ipc:///tmp/ppx-<model_name>``.
    """
    return f"ipc:///tmp/ppx-{model_name}"


def main(
    fn_factory: Callable[[argparse.Namespace], Callable[[], Any]],
    *,
    model_name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse the command line, build the simulator and serve it (blocks).

    Args:
        fn_factory: Builds the no-argument simulator callable from the parsed options.
        model_name: Name announced to the engine in the handshake; also used for the
            default address.
        description: Help text of the command (usually the module docstring).
        add_arguments: Adds the model-specific options to the parser.
        argv: Arguments to parse instead of ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog=f"python -m ppx.simulators.{model_name}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--address",
        default=default_address(model_name),
        help=(
            "ZeroMQ address to bind and serve on (default: %(default)s); "
            "tcp://127.0.0.1:PORT also works"
        ),
    )
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    fn = fn_factory(args)

    import ppx  # lazily: building the parser must not need the runtime

    ppx.serve(fn, args.address, model_name=model_name)
