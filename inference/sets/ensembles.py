"""Ensembles of events from PPX programs: sets of events that share global parameters.

Two ways to write a set: ``mode="one_run"``, where one run is a set (the globals
drawn once, then event ``i``'s local draws and observes inside
``ppx.scope(f"event{i}")``, read back as ``event{i}/<name>``; with ``n=`` the
engine imposes the number of events on the program's draw ``size_name``), and
``mode="per_event"``, where one run is an event and the engine replays the
globals of a set's first run (or of a ``prior=`` draw) in its other runs.
Set ``k`` (its size and its draws) is seeded from ``(seed, k)``, so it comes out
the same on any chunk or Dask worker, and a resumed store equals an
uninterrupted one. The machinery is that of :func:`ppx.inference.sbi.simulate`.

References:
    Heinrich, Mishra-Sharma, et al., "Hierarchical Neural Simulation-Based
    Inference Over Event Ensembles" (2023), arXiv:2306.12584.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np
import torch
from torch.distributions import Distribution

from ppx.engine.controllers import ReplayController
from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.inference.executor import call, dask_client, progress_bar, run_chunks
from ppx.inference.sbi.layout import Block, Layout
from ppx.inference.sbi.priors import program_prior
from ppx.inference.sbi.simulate import ParameterSampler
from ppx.inference.sets.set_store import (
    SetChunk,
    SetSimulations,
    SetSize,
    append_sets,
    assemble,
    describe_n,
    done_sets,
    load_sets,
    open_set_store,
    set_size,
)
from ppx.provenance import collect
from ppx.trace import Trace

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["EnsemblePlan", "Mode", "simulate_ensembles", "simulate_sets"]

Mode: TypeAlias = Literal["one_run", "per_event"]
PROBE_SET = -1


@dataclass(frozen=True)
class EnsemblePlan:
    """How to make a set: what a chunk of sets needs besides the model.

    Attributes:
        layout: global blocks (``parameters``) and one event's data blocks
            (``data``, keyed by the names the user gave, without scope).
        mode: ``"one_run"`` or ``"per_event"``.
        events: one_run: event ``i``'s scope, with ``{i}`` for its index.
        size_name: one_run: the program's draw that the engine sets to ``N``.
        prior: draw ``theta`` from this instead of the program's prior.
        seed: set ``k`` is seeded from ``(seed, k)``.
    """

    layout: Layout
    mode: Mode
    events: str = "event{i}"
    size_name: str = "num_events"
    prior: ParameterSampler | None = None
    seed: int = 0

    def keys(self, i: int) -> list[str]:
        """The data keys of event ``i`` in a one_run trace."""
        scope = self.events.format(i=i)
        return [f"{scope}/{block.key}" for block in self.layout.data]

    def run_layout(self, count: int) -> Layout:
        """one_run: a layout whose data are the blocks of events ``0 .. count - 1``."""
        blocks = [
            replace(block, key=f"{self.events.format(i=i)}/{block.key}")
            for i in range(count)
            for block in self.layout.data
        ]
        return replace(self.layout, data=tuple(blocks))

    def settings(self, n: str) -> dict[str, str | int]:
        """What a store records of this plan (``n`` as :func:`simulate_ensembles` describes it)."""
        one_run = self.mode == "one_run"
        return {
            "mode": self.mode,
            "events": self.events if one_run else "",
            "size_name": self.size_name if one_run and n != "program" else "",
            "n": n,
            "seed": self.seed,
            "theta_source": "program" if self.prior is None else repr(self.prior),
        }

    def draw_theta(self) -> dict[str, torch.Tensor] | None:
        """Values of the globals drawn from :attr:`prior`, by key (``None``: no prior)."""
        if self.prior is None:
            return None
        theta = torch.as_tensor(self.prior.sample((1,)), dtype=torch.float32).reshape(-1)
        if theta.numel() != self.layout.theta_dim:
            raise ValueError(
                f"prior draws have {theta.numel()} values; the globals "
                f"{[b.key for b in self.layout.parameters]} have {self.layout.theta_dim}"
            )
        return self.layout.split_theta(theta)


def _seed_set(seed: int, index: int) -> None:
    torch.manual_seed(hash((seed, index, 16)) % 2**63)


def _names(trace: Trace, limit: int = 40) -> str:
    """The names a trace offers, for error messages (at most ``limit`` of them)."""
    names = list(dict.fromkeys([d.name or d.address for d in trace] + sorted(trace.tags)))
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"its draws and tags are {names[:limit]}{more}"


def event_count(trace: Trace, plan: EnsemblePlan, label: str) -> int:
    """one_run: how many events ``trace`` has, each with every data key.

    Raises:
        ValueError: no events (an empty set), or events lacking some data key.
    """
    before, after = plan.events.split("{i}")
    found: dict[str, set[int]] = {}
    names = [d.name or d.base for d in trace] + list(trace.tags)
    for block in plan.layout.data:
        pattern = re.compile(f"{re.escape(before)}(\\d+){re.escape(after)}/{re.escape(block.key)}")
        found[block.key] = {int(m[1]) for name in names if (m := pattern.fullmatch(name))}
    count = max((max(indices, default=-1) + 1 for indices in found.values()), default=0)
    if count == 0:
        keys = [f"{plan.events}/{b.key}" for b in plan.layout.data]
        raise ValueError(
            f"{label} of simulator {plan.layout.simulator!r} made no events (no data named "
            f"like {keys}): sets cannot be empty; {_names(trace)}"
        )
    for key, indices in found.items():
        missing = sorted(set(range(count)) - indices)
        if missing:
            raise ValueError(
                f"{label} of simulator {plan.layout.simulator!r} made {count} events, but "
                f"events {missing[:10]} have no {key!r}; {_names(trace)}"
            )
    return count


def _one_run_set(model: Model, plan: EnsemblePlan, index: int, size: int | None) -> np.ndarray:
    """Flat ``[theta, events...]`` of one one_run set, and its event count first."""
    values: dict[str, torch.Tensor] = plan.draw_theta() or {}
    if size is not None:
        values[plan.size_name] = torch.tensor(size)
    trace = model.run(controller=ReplayController(values) if values else None)
    count = event_count(trace, plan, f"set {index}")
    if size is not None and count != size:
        raise ValueError(
            f"set {index}: the engine set {plan.size_name!r} to {size}, but simulator "
            f"{plan.layout.simulator!r} made {count} events"
        )
    theta, events = plan.run_layout(count).flatten(trace, index)
    return np.concatenate([[count], theta, events]).astype(np.float32)


def _per_event_set(model: Model, plan: EnsemblePlan, index: int, size: int) -> np.ndarray:
    """Flat ``[size, theta, events...]`` of one per_event set."""
    values = plan.draw_theta()
    first = model.run(controller=None if values is None else ReplayController(values))
    theta, event = plan.layout.flatten(first, index)
    events = [event]
    replay = ReplayController(plan.layout.split_theta(torch.from_numpy(theta)))
    for _ in range(size - 1):
        events.append(plan.layout.flatten(model.run(controller=replay), index)[1])
    return np.concatenate([[size], theta, *events]).astype(np.float32)


def simulate_sets(
    spec: ModelSpec, plan: EnsemblePlan, sets: Sequence[int], sizes: Sequence[int | None]
) -> SetChunk:
    """Make ``sets`` (of ``sizes`` events) on this process's model of ``spec`` (a Dask task)."""
    model = spec.cached()
    d_theta, d_event = plan.layout.theta_dim, plan.layout.x_dim
    kept, thetas, counts, events, invalid = [], [], [], [], []
    for index, size in zip(sets, sizes, strict=True):
        _seed_set(plan.seed, index)
        if plan.mode == "one_run":
            flat = _one_run_set(model, plan, index, size)
        else:
            flat = _per_event_set(model, plan, index, size or 1)
        if not np.isfinite(flat).all():
            invalid.append(index)
            continue
        kept.append(index)
        counts.append(int(flat[0]))
        thetas.append(flat[1 : 1 + d_theta])
        events.append(flat[1 + d_theta :].reshape(-1, d_event))
    return SetChunk(
        np.asarray(kept, np.int64),
        np.stack(thetas) if thetas else np.zeros((0, d_theta), np.float32),
        np.asarray(counts, np.int64),
        np.concatenate(events) if events else np.zeros((0, d_event), np.float32),
        np.asarray(invalid, np.int64),
    )


def _simulate_sets_here(
    spec: ModelSpec, plan: EnsemblePlan, sets: Sequence[int], sizes: Sequence[int | None]
) -> SetChunk:
    """:func:`simulate_sets`, leaving this process's torch random state as it was."""
    with torch.random.fork_rng(devices=[]):
        return simulate_sets(spec, plan, sets, sizes)


def _probe(spec: ModelSpec, plan: EnsemblePlan, n_given: bool) -> tuple[Layout, list[Distribution]]:
    """The layout (from one run) and the globals' distributions in that run."""
    model, layout = spec.cached(), plan.layout
    with torch.random.fork_rng(devices=[]):
        _seed_set(plan.seed, PROBE_SET)
        imposed = {plan.size_name: torch.tensor(1)} if n_given and plan.mode == "one_run" else {}
        trace = model.run(controller=ReplayController(imposed) if imposed else None)
    globals_ = [b.key for b in layout.parameters]
    if plan.mode == "per_event":
        layout = Layout.probe(trace, model.name, globals_, [b.key for b in layout.data])
    else:
        if n_given and not (plan.size_name in trace and trace.draw(plan.size_name).is_latent):
            raise ValueError(
                f"n= needs simulator {model.name!r} to draw its number of events as a sample "
                f"named {plan.size_name!r} (or pass size_name=, or n=None); {_names(trace)}"
            )
        plan = replace(plan, layout=replace(layout, simulator=model.name))
        count = event_count(trace, plan, "the probe run")
        if n_given and count != 1:
            raise ValueError(
                f"the engine set {plan.size_name!r} to 1, but simulator {model.name!r} made "
                f"{count} events: the program must make as many events as that draw says"
            )
        probed = Layout.probe(trace, model.name, globals_, plan.keys(0))
        data = tuple(replace(b, key=d.key) for b, d in zip(probed.data, layout.data, strict=True))
        layout = replace(probed, data=data)
    draws = [trace.draw(block.key) for block in layout.parameters]
    fixed = [d.name or d.address for d in draws if not d.controlled]
    if fixed and (plan.mode == "per_event" or plan.prior is not None):
        raise ValueError(
            f"the engine cannot impose globals {fixed} of simulator {model.name!r}: they are "
            "drawn with control=False (needed by mode='per_event' and by prior=)"
        )
    return layout, [d.distribution for d in draws if d.distribution is not None]


def simulate_ensembles(
    model: Model | ModelSpec,
    globals: Sequence[str] = ("mu",),
    data: Sequence[str] = ("x",),
    num_sets: int = 1000,
    n: SetSize = None,
    *,
    mode: Mode = "one_run",
    events: str = "event{i}",
    size_name: str = "num_events",
    prior: ParameterSampler | None = None,
    store: str | Path | None = None,
    workers: int | Client | None = None,
    chunk_size: int = 100,
    seed: int = 0,
    progress: bool | None = None,
) -> SetSimulations:
    """Simulate ``num_sets`` ensembles of events, each sharing one draw of the globals.

    Arguments:
        model: a :class:`ppx.Model` (local or remote) or its :class:`ModelSpec`.
        globals: names or addresses of the latent draws a set shares (``theta``).
        data: names of each event's samples, observes or tags (an event's vector);
            in one_run mode without the event scope (``"x"`` for ``event3/x``).
        num_sets: sets to make (sets ``0 .. num_sets - 1``).
        n: events per set: an int, an inclusive range ``(lo, hi)`` drawn per set,
            or a function of a ``numpy.random.Generator`` giving an int; one_run
            also takes ``None`` (the program's own number).
        mode: ``"one_run"`` (a run is a set) or ``"per_event"`` (a run is an event).
        events: one_run: the scope of event ``i``, with ``{i}`` for its index.
        size_name: one_run with ``n``: the program's draw the engine sets to ``N``.
        prior: draw the globals from this (``.sample((1,))`` gives ``[1, theta_dim]``)
            and impose them, instead of the program's own draws.
        store: HDF5 file the sets stream to (:mod:`~ppx.inference.sets.set_store`);
            an existing store of the same job is resumed (only missing sets are made).
        workers: a ``distributed.Client``, or a number of local Dask workers (0: here).
        chunk_size: sets per chunk (the unit of storing and of Dask tasks).
        seed: set ``k`` (its size and its draws) is seeded from ``(seed, k)``.
        progress: show a progress bar (default: when stderr is a terminal).

    Returns:
        The valid sets in set order; sets with NaN or inf values are dropped,
        counted, recorded in the store and warned about.

    Raises:
        ValueError: a global or datum is not in the program, or it makes no events
            (the message lists its names); n < 1; a store of another job.

    Example:
        >>> sets = simulate_ensembles(ppx.LocalModel(program), ["mu"], ["x"], 1000, n=(10, 100))
        >>> events, mask = sets.padded()
    """
    n_text = _check_arguments(num_sets, chunk_size, mode, globals, data, events, n)
    spec = ModelSpec.of(model)
    blank = Layout(
        "?", tuple(Block(k, k, ()) for k in globals), tuple(Block(k, k, ()) for k in data)
    )
    plan = EnsemblePlan(blank, mode, events, size_name, prior, seed)
    local = workers if isinstance(workers, int) and workers > 0 else None
    client = None if isinstance(workers, int) or workers is None else workers
    with dask_client(client, start=local is not None, n_workers=local) as client:
        layout, distributions = call(_probe, spec, plan, n is not None, client=client)
        plan = replace(plan, layout=layout)
        theta_prior = prior if isinstance(prior, Distribution) else None
        if prior is None:
            theta_prior = program_prior(distributions, layout)
        settings = plan.settings(n_text)
        if store is not None:
            record = collect(seed=seed, simulator=model)
            open_set_store(store, layout, theta_prior, settings, record)
        missing = sorted(set(range(num_sets)) - (done_sets(store) if store else set()))
        chunks = [missing[i : i + chunk_size] for i in range(0, len(missing), chunk_size)]
        tasks = [(spec, plan, c, [set_size(n, seed, k) for k in c]) for c in chunks]
        label = f"ensembles of {layout.simulator}"
        initial = num_sets - len(missing)
        results: list[SetChunk] = []
        with progress_bar(num_sets, label, show=progress, initial=initial, unit="set") as bar:
            for _, chunk in run_chunks(
                _simulate_sets_here if client is None else simulate_sets,
                tasks,
                client=client,
                bar=bar,
                size=lambda chunk: len(chunk.sets) + len(chunk.invalid),
            ):
                if store is None:
                    results.append(chunk)
                else:
                    append_sets(store, chunk)
    if store is not None:
        sets = load_sets(store, num_sets)
    else:
        rows = SetChunk.join(results, layout.theta_dim, layout.x_dim)
        sets = assemble(rows, layout, theta_prior, settings)
    if sets.num_invalid:
        where = f" (their indices are in {store}:/invalid_set)" if store else ""
        warnings.warn(
            f"{sets.num_invalid} of {num_sets} sets of simulator {layout.simulator!r} "
            f"had NaN or inf values and were dropped{where}",
            stacklevel=2,
        )
    return sets


def _check_arguments(
    num_sets: int,
    chunk_size: int,
    mode: Mode,
    globals: Sequence[str],
    data: Sequence[str],
    events: str,
    n: SetSize,
) -> str:
    """Check the arguments of :func:`simulate_ensembles`; ``n`` described for the store."""
    if num_sets < 1 or chunk_size < 1:
        raise ValueError(f"need num_sets and chunk_size >= 1, got {num_sets}, {chunk_size}")
    if mode not in ("one_run", "per_event"):
        raise ValueError(f"mode must be 'one_run' or 'per_event', got {mode!r}")
    if not globals or not data:
        raise ValueError("need at least one global name and one data name")
    if mode == "one_run" and events.count("{i}") != 1:
        raise ValueError(f"events must contain '{{i}}' once (the event index), got {events!r}")
    return describe_n(n, mode)
