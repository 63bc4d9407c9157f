"""Every runnable simulator of :mod:`ppx.simulators`, by name: one table read by all.

The command line (``ppx serve NAME``), ``python -m ppx.simulators.NAME`` and the
Dask model specs look simulators up here. An entry only names its module; the
module itself declares its command line once, and this registry imports it lazily
(so that listing the names never imports a simulator, nor an optional dependency
such as ``pythia8mc``). A simulator module defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def from_arguments(args: argparse.Namespace) -> Callable[[], object]: ...

or, when its options are named as the parameters of its ``make_model``, only
``add_arguments``: the simulator is then ``make_model(**vars(args))``.

Example:
    >>> fn, model_name = build("gaussian", ["--num-observations", "3"])
    >>> ppx.LocalModel(fn, name=model_name).run()
    >>> argv("gaussian")[1:]  # what RemoteModel.spawn runs, after sys.executable
    ['-P', '-m', 'ppx.simulators.gaussian']
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import NoReturn

__all__ = [
    "SimulatorEntry",
    "argv",
    "build",
    "entry",
    "from_arguments",
    "names",
    "parse_options",
    "parser",
]


@dataclass(frozen=True)
class SimulatorEntry:
    """One runnable simulator.

    Attributes:
        name: Short name, e.g. ``"gaussian"`` (also the model name of the handshake).
        module: The module ``python -m`` runs, e.g. ``"ppx.simulators.gaussian"``.
        summary: One line for ``ppx --help``.
        extra: The optional dependency extra of ``ppx-engine`` it needs, or ``None``.
    """

    name: str
    module: str
    summary: str
    extra: str | None = None


def _builtin(name: str, summary: str, extra: str | None = None) -> SimulatorEntry:
    return SimulatorEntry(name, f"ppx.simulators.{name}", summary, extra)


_ENTRIES: dict[str, SimulatorEntry] = {
    e.name: e
    for e in (
        _builtin("gaussian", "Gaussian with unknown mean: conjugate, exact posterior"),
        _builtin("hmm", "hidden Markov model, exact by forward-backward"),
        _builtin("branching", "trace structure set by a Poisson draw; exact by enumeration"),
        _builtin("rejection", "a rejection-sampling loop whose acceptance depends on a latent"),
        _builtin("gillespie", "Gillespie SSA of a reaction network (--network lotka_volterra)"),
        _builtin("calorimeter", "toy sampling calorimeter: one particle in, its deposit observed"),
        _builtin("tau_decay", "tau-lepton decay seen through the toy calorimeter (Etalumis)"),
        _builtin("pythia", "Pythia 8 events, every random number a PPX draw", extra="pythia"),
        _builtin("sbi_tasks", "an sbibm benchmark task (--task two_moons, slcp, sir, ...)"),
    )
}


def names() -> list[str]:
    """Every registered simulator name, sorted (imports no simulator)."""
    return sorted(_ENTRIES)


def entry(name: str) -> SimulatorEntry:
    """The entry of simulator ``name`` (imports no simulator).

    Arguments:
        name: A registered name (:func:`names`).

    Returns:
        Its :class:`SimulatorEntry`.

    Raises:
        ValueError: Unknown name; the message lists the valid ones.
    """
    try:
        return _ENTRIES[name]
    except KeyError:
        raise ValueError(f"unknown simulator {name!r}: use one of {', '.join(names())}") from None


def parser(name: str) -> argparse.ArgumentParser:
    """The simulator's own command line (no ``--address``), its module docstring as help.

    Arguments:
        name: A registered name (:func:`names`).

    Returns:
        A fresh parser; ``prog`` is ``python -m MODULE``.

    Raises:
        ValueError: Unknown name.
        ImportError: A missing optional dependency (the message says what to install).
    """
    return _parser(name, argparse.ArgumentParser, add_help=True)


def build(name: str, options: Sequence[str] = ()) -> tuple[Callable[[], object], str]:
    """Parse ``options`` with the simulator's parser and build the simulator.

    Arguments:
        name: A registered name (:func:`names`).
        options: Command-line options of the simulator, e.g. ``["--network", "association"]``.

    Returns:
        ``(simulator function, model name)``.

    Raises:
        ValueError: Unknown name, unknown option or bad value; the message names the
            simulator.
        ImportError: A missing optional dependency (the message says what to install).
    """
    return from_arguments(name, parse_options(name, options)), name


def parse_options(name: str, options: Sequence[str] = ()) -> argparse.Namespace:
    """Check and parse ``options`` with the simulator's parser, without building it.

    Arguments:
        name: A registered name (:func:`names`).
        options: Command-line options of the simulator.

    Returns:
        The parsed options.

    Raises:
        ValueError: Unknown name, unknown option or bad value; the message names the
            simulator.
        ImportError: A missing optional dependency (the message says what to install).
    """
    command = _parser(name, _RaisingParser, add_help=False)
    try:
        return command.parse_args(list(options))
    except ValueError as error:  # argparse's message, raised by _RaisingParser
        raise ValueError(f"simulator {name!r}: {error}") from None


def argv(name: str, options: Sequence[str] = ()) -> list[str]:
    """The command that serves the simulator, for ``RemoteModel.spawn`` or a spawn spec.

    Arguments:
        name: A registered name (:func:`names`).
        options: Command-line options of the simulator (not checked here).

    Returns:
        ``[sys.executable, "-P", "-m", module, *options]`` (on Python 3.10, an
        equivalent): the module runs with nothing imported from the working
        directory, so a folder there named ``ppx`` cannot shadow PPX. The
        spawner appends ``--address``.

    Raises:
        ValueError: Unknown name.
    """
    from ppx.engine.process import python_module_argv

    return python_module_argv(entry(name).module, *options)


def from_arguments(name: str, args: argparse.Namespace) -> Callable[[], object]:
    """Build simulator ``name`` from options parsed by its :func:`parser`.

    Arguments:
        name: A registered name (:func:`names`).
        args: The parsed options (only the simulator's own).

    Returns:
        The no-argument simulator function.

    Raises:
        ValueError: The simulator rejected a value; the message names the simulator.
    """
    module = _load(name)
    factory = getattr(module, "from_arguments", None)
    try:
        if factory is None:
            return module.make_model(**vars(args))
        return factory(args)
    except ValueError as error:
        raise ValueError(f"simulator {name!r}: {error}") from error


def _parser(
    name: str, parser_class: type[argparse.ArgumentParser], add_help: bool
) -> argparse.ArgumentParser:
    """The simulator's parser, of ``parser_class``, filled by its ``add_arguments``."""
    module = _load(name)
    result = parser_class(
        prog=f"python -m {entry(name).module}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=add_help,
    )
    module.add_arguments(result)
    return result


def _load(name: str) -> ModuleType:
    """Import the simulator's module, turning a missing extra into install advice."""
    found = entry(name)
    try:
        module = importlib.import_module(found.module)
    except ModuleNotFoundError as error:
        if found.extra is None:
            raise
        raise ImportError(
            f"simulator {name!r} needs an optional dependency ({error}): "
            f"pip install 'ppx-engine[{found.extra}]'"
        ) from error
    return module


class _RaisingParser(argparse.ArgumentParser):
    """An argument parser that raises ``ValueError`` instead of exiting."""

    def error(self, message: str) -> NoReturn:
        """Raise argparse's usage error as a ``ValueError``."""
        raise ValueError(message)
