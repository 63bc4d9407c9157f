"""What the ``ppx`` commands share: options, simulator recipes, observations, Dask clients.

A simulator is given one way in every command: ``--simulator "NAME [options]"``
(a simulator of :mod:`ppx.simulators.registry`, with its own options, or
``package.module:function``), which PPX starts as a subprocess served over
PPX, or ``--address ADDR`` of one already serving.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import shlex
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from ppx.engine.model_spec import ModelSpec
from ppx.simulators import registry

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "AddressOption",
    "SeedOption",
    "SimulatorOption",
    "TimeoutOption",
    "announce_seed",
    "console",
    "dask_client",
    "interruptible",
    "load_simulator",
    "model_spec",
    "parse_observations",
    "plain_stdout",
    "released",
    "seed_engine",
    "simulators_help",
]

console = Console()

_P = ParamSpec("_P")
_R = TypeVar("_R")


def interruptible(
    message: str | Callable[..., str],
) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Ctrl-C in a command prints ``message`` (what was kept, how to resume) and exits 130.

    typer turns a KeyboardInterrupt into a silent exit 130; a user deserves one
    line. ``message`` may be a function of the command's options (typer passes
    them by keyword), called once the command has stopped, to say how much was
    kept and where.
    """

    def decorate(command: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(command)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return command(*args, **kwargs)
            except KeyboardInterrupt:
                line = message if isinstance(message, str) else message(**kwargs)
                console.print(line, soft_wrap=True, markup=False)
                raise typer.Exit(130) from None

        return run

    return decorate


def simulators_help() -> str:
    """One line per registered simulator, for ``--help`` texts."""
    return "\n\n".join(f"{name}: {registry.entry(name).summary}" for name in registry.names())


SimulatorOption = Annotated[
    str | None,
    typer.Option(
        "--simulator",
        "-s",
        help=f'"NAME \\[options]" ({", ".join(registry.names())}) or module:function; '
        "started and served over PPX",
    ),
]
AddressOption = Annotated[
    str | None, typer.Option("--address", "-a", help="address of a simulator already serving")
]
TimeoutOption = Annotated[
    float, typer.Option(min=0.001, help="seconds to wait for each simulator reply")
]
SeedOption = Annotated[
    int | None, typer.Option(help="seed the engine's random numbers (the engine draws every value)")
]


def _split(simulator: str) -> tuple[str, list[str]]:
    words = shlex.split(simulator)
    if not words:
        raise typer.BadParameter("empty simulator name", param_hint="--simulator")
    return words[0], words[1:]


def load_simulator(simulator: str) -> tuple[Callable[[], object], str]:
    """The function and model name of ``"NAME [options]"`` or ``module:function``."""
    name, options = _split(simulator)
    module_name, colon, attribute = name.partition(":")
    if colon:
        try:
            fn = getattr(importlib.import_module(module_name), attribute)
        except Exception as error:  # whatever the user's module raises on import
            raise typer.BadParameter(
                f"cannot load simulator {name!r}: {type(error).__name__}: {error}"
            ) from None
        return fn, attribute
    try:
        return registry.build(name, options)
    except (ValueError, ImportError) as error:
        raise typer.BadParameter(str(error), param_hint="SIMULATOR") from None


def model_spec(simulator: str | None, address: str | None, timeout: float) -> ModelSpec:
    """A picklable recipe for the model: Dask workers build their own from it."""
    if (simulator is None) == (address is None):
        raise typer.BadParameter("give exactly one of --simulator NAME or --address ADDR")
    from ppx.engine.process import found_in_working_directory, python_module_argv
    from ppx.errors import InvalidAddress
    from ppx.protocol import check_address

    if address is not None:
        try:
            check_address(address)  # the check ppx serve makes, here before any socket
        except InvalidAddress as error:
            raise typer.BadParameter(str(error), param_hint="--address") from None
        return ModelSpec("connect", address, {"timeout": timeout, "handshake_timeout": timeout})
    assert simulator is not None
    name, options = _split(simulator)
    if ":" in name:
        load_simulator(simulator)  # fail here, not in the subprocess
        # The subprocess imports nothing from the working directory (a folder named
        # ppx there would shadow PPX), unless the simulator's module was found there.
        serve = ("ppx.cli", "serve", simulator)
        module = name.partition(":")[0]
        local = found_in_working_directory(module)
        argv = [sys.executable, "-m", *serve] if local else python_module_argv(*serve)
    else:
        try:
            registry.parse_options(name, options)  # fail here, not in the subprocess
        except (ValueError, ImportError) as error:
            raise typer.BadParameter(str(error), param_hint="--simulator") from None
        argv = registry.argv(name, options)
    return ModelSpec("spawn", argv, {"timeout": timeout})


@contextlib.contextmanager
def released(spec: ModelSpec | None) -> Iterator[None]:
    """Close the model this process built from ``spec`` (if any), whatever happens."""
    try:
        yield
    finally:
        if spec is not None:
            spec.release()


def seed_engine(seed: int | None) -> None:
    """Seed torch (which makes every controlled draw) when a seed is given."""
    if seed is not None:
        import torch

        torch.manual_seed(seed)


@contextlib.contextmanager
def plain_stdout() -> Iterator[None]:
    """When stdout is not a terminal, show libraries' ``\\r``-redrawn progress as plain lines.

    sbi counts its training epochs on one redrawn stdout line; into a pipe or a
    log that shows nothing until training ends.
    """
    if sys.stdout.isatty():
        yield
        return
    from ppx.inference.executor import PlainLines

    with contextlib.redirect_stdout(PlainLines(sys.stdout)):
        yield


def announce_seed(seed: int | None) -> int:
    """Seed torch with ``seed`` (a fresh random one when None) and print it, so a run repeats."""
    import secrets

    chosen = secrets.randbelow(2**31) if seed is None else seed
    seed_engine(chosen)
    console.print(f"seed {chosen} (--seed {chosen} repeats this run)", style="dim")
    return chosen


def parse_observations(pairs: list[str]) -> dict[str, float | list[float]]:
    """``["obs0=8", "img=[1,2]"]`` -> ``{"obs0": 8.0, "img": [1.0, 2.0]}``."""
    observe: dict[str, float | list[float]] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--observe expects name=value, got {pair!r}")
        try:
            value = [float(v) for v in text.strip("[]").split(",")] if "," in text else float(text)
        except ValueError as error:
            raise typer.BadParameter(f"--observe {name}: {text!r} is not a number") from error
        observe[name] = value
    return observe


@contextlib.contextmanager
def dask_client(
    wanted: bool, scheduler: str | None, workers: int | None, hpc: str | None, hpc_jobs: int
) -> Iterator[Client | None]:
    """A Dask client when the job runs on Dask (local, joined or HPC), else None."""
    if not wanted:
        yield None
        return
    from ppx.inference.cluster import open_client

    local_workers = None if scheduler or hpc else workers
    with open_client(scheduler, n_workers=local_workers, hpc=hpc, hpc_jobs=hpc_jobs) as client:
        yield client
