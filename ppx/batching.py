"""Batched draws (extension ``batched_draws``): a run without a round trip per draw.

Pythia calls ``flat()`` thousands of times an event and a Gillespie run makes
10^4 draws; one ZeroMQ round trip each would dominate the run. When both peers
announce ``batched_draws``:

* **record mode**: the simulator makes its uncontrolled draws itself (the
  engine seeds them with ``Run.seed``) and reports them in bulk, as
  :class:`~ppx.protocol.messages.DrawBlock` s attached to its next message;
* **replay mode**: ``Run.replay`` carries the values the engine already knows
  (a replayed trace, the unchanged sites of an MCMC proposal, observed
  values); the simulator uses them locally and asks only about the rest;
* observes and tags, which need no answer, travel with the next message too.

The engine numbers the reported draws exactly as if each had come as its own
``Sample``, so the trace equals a draw-by-draw one. This module holds both
halves: :class:`LocalDraws` (simulator side, one per run) and
:func:`replay_blocks` / :func:`record_blocks` (engine side).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppx.addressing import address_stem, split_address
from ppx.protocol import messages as m
from ppx.trace import as_value

if TYPE_CHECKING:
    from ppx.recorder import Recorder

__all__ = ["LocalDraws", "record_blocks", "replay_blocks"]


class _Pending:
    """Consecutive local statements that will travel as one DrawBlock."""

    __slots__ = ("address", "control", "distribution", "name", "statement", "values")

    def __init__(
        self,
        address: str,
        name: str | None,
        distribution: Any,
        control: bool = True,
        statement: str = "sample",
    ) -> None:
        self.address = address
        self.name = name
        self.distribution = distribution
        self.control = control
        self.statement = statement
        self.values: list[Any] = []

    def block(self) -> m.DrawBlock:
        first = self.values[0]
        if first is None:  # an observe without a value
            values = None
        elif torch.is_tensor(first):
            values = torch.stack(self.values).to(torch.float64).numpy(force=True)
        else:
            values = np.asarray(self.values, dtype=np.float64)
        return m.DrawBlock(
            self.address, self.distribution, values, self.name, self.control, self.statement
        )


class LocalDraws:
    """The simulator's side of one batched run: replayed values, local draws, the report.

    Counts every draw's instance as the engine does, so that replayed values
    keyed by full address find their draws.
    """

    def __init__(self, run: m.Run) -> None:
        self.record = run.record
        if run.record:  # the CPU generator only: torch.manual_seed costs 60x more
            torch.default_generator.manual_seed(run.seed)
        self.named: dict[str, np.ndarray] = {}
        self.stems: dict[str, tuple[int, np.ndarray]] = {}
        for block in run.replay:
            if block.first_instance == 0:
                self.named[block.key] = block.values[0]
            else:
                self.stems[block.key] = (block.first_instance, block.values)
        self.instances: dict[str, int] = {}
        self.pending: list[_Pending] = []

    def count(self, base: str, distribution: Any) -> tuple[str, int]:
        """Count one draw at ``base``; returns its address stem and instance."""
        stem = address_stem(base, distribution)
        instance = self.instances.get(stem, 0) + 1
        self.instances[stem] = instance
        return stem, instance

    def known(self, stem: str, instance: int, base: str, name: str | None) -> Any:
        """The engine's value for this draw (observed first, as the recorder does); or None."""
        named = self.named
        if named and name is not None and name in named:
            return named[name]
        block = self.stems.get(stem)
        if block is not None:
            first, values = block
            if first <= instance < first + len(values):
                return values[instance - first]
        return named.get(base) if named else None

    def sample(self, base: str, name: str | None, distribution: Any, control: bool) -> Any:
        """The value of a sample made locally, or None: the engine must be asked."""
        stem, instance = self.count(base, distribution)
        value = self.known(stem, instance, base, name)
        if value is not None:
            value = as_value(value, distribution)
        elif self.record and not control:
            value = distribution.sample()
        else:
            return None
        self.add(base, name, distribution, control, value)
        return value

    def add(
        self, base: str, name: str | None, distribution: Any, control: bool, value: Any
    ) -> None:
        """Append a local draw to the report."""
        pending = self.pending
        last = pending[-1] if pending else None
        if (
            last is None
            or last.distribution is not distribution
            or last.address != base
            or last.name != name
            or last.control != control
        ):
            last = _Pending(base, name, distribution, control)
            pending.append(last)
        last.values.append(value)

    def observe(self, base: str, name: str | None, distribution: Any, value: Any) -> None:
        """Report an observe with the next message instead of a round trip of its own."""
        self.count(base, distribution)
        pending = _Pending(base, name, distribution, statement="observe")
        pending.values.append(None if value is None else torch.as_tensor(value))
        self.pending.append(pending)

    def tag(self, address: str, name: str | None, value: Any) -> None:
        """Report a tag with the next message."""
        pending = _Pending(address, name, None, statement="tag")
        pending.values.append(None if value is None else torch.as_tensor(value))
        self.pending.append(pending)

    def flush(self) -> tuple[m.DrawBlock, ...]:
        """The report of the local draws since the last message; empties it."""
        if not self.pending:
            return ()
        blocks = tuple(pending.block() for pending in self.pending)
        self.pending.clear()  # in place: samplers hold this list
        return blocks

    def scalar_sampler(
        self,
        base: str,
        name: str | None,
        distribution: Any,
        control: bool,
        ask: Callable[[], float],
    ) -> Callable[[], float]:
        """A fast ``ppx.sampler`` for this run: one Python call per draw, no Effect.

        ``ask`` makes the draw a round trip (values the engine must choose).
        """
        stem = address_stem(base, distribution)
        block = self.stems.get(stem)
        first, replayed = block if block is not None else (1, np.empty(0))
        last_replayed = first + len(replayed)
        observed = self.named.get(name) if name is not None else None
        if observed is None:
            observed = self.named.get(base)
        instances = self.instances
        pending = self.pending
        chunk: list[float] = []
        mine: list[_Pending | None] = [None]  # this sampler's open block, if still last

        def local_value(instance: int) -> float | None:
            if observed is not None:
                return float(observed)
            if first <= instance < last_replayed:
                return float(replayed[instance - first])
            if self.record and not control:
                if not chunk:
                    chunk.extend(distribution.sample((1024,)).tolist()[::-1])
                return chunk.pop()
            return None

        def draw() -> float:
            instance = instances.get(stem, 0) + 1
            instances[stem] = instance
            value = local_value(instance)
            if value is None:
                return ask()
            if not pending or pending[-1] is not mine[0]:
                mine[0] = _Pending(base, name, distribution, control)
                pending.append(mine[0])
            mine[0].values.append(value)
            return value

        return draw


# -- engine side -------------------------------------------------------------------


def replay_blocks(
    observed: Mapping[str, Any], known: Mapping[str, Any] | None
) -> tuple[m.ValueBlock, ...]:
    """``Run.replay`` for a run: the observations, then the controller's known values.

    Known values at observed addresses are left out: observations win, as in
    the recorder. Consecutive instances of one stem and shape travel as one block.
    """
    blocks = []
    observed_stems: set[tuple[str, int]] = set()
    for key, value in observed.items():
        split = split_address(key)
        if split is None:
            blocks.append(m.ValueBlock(key, 0, _rows([value])))
        else:
            observed_stems.add(split)
            blocks.append(m.ValueBlock(split[0], split[1], _rows([value])))
    if not known:
        return tuple(blocks)
    by_stem: dict[str, list[tuple[int, Any]]] = {}
    for address, value in known.items():
        split = split_address(address)
        if split is None or split in observed_stems:
            continue
        stem, instance = split
        if stem.rsplit("__", 1)[0] in observed:
            continue
        by_stem.setdefault(stem, []).append((instance, value))
    for stem, items in by_stem.items():
        items.sort(key=lambda item: item[0])
        start = 0
        for i in range(1, len(items) + 1):
            if (
                i == len(items)
                or items[i][0] != items[i - 1][0] + 1
                or np.shape(items[i][1]) != np.shape(items[i - 1][1])  # one block, one shape
            ):
                run = items[start:i]
                blocks.append(m.ValueBlock(stem, run[0][0], _rows([v for _, v in run])))
                start = i
    return tuple(blocks)


def _rows(values: list[Any]) -> np.ndarray:
    return np.array(
        [
            np.asarray(v.numpy(force=True) if torch.is_tensor(v) else v, dtype=np.float64)
            for v in values
        ]
    )


def record_blocks(recorder: Recorder, blocks: tuple[m.DrawBlock, ...]) -> None:
    """Enter the simulator's local draws into the trace, numbered as single draws."""
    for block in blocks:
        if block.statement == "sample":
            recorder.local_block(
                block.address, block.name, block.distribution, block.values, block.control
            )
        elif block.statement == "observe":
            for value in [None] if block.values is None else block.values:
                recorder.observe(block.address, block.name, block.distribution, value)
        else:
            for value in [None] if block.values is None else block.values:
                tagged = None if value is None else torch.from_numpy(np.asarray(value))
                recorder.tag(block.name or block.address, tagged)
