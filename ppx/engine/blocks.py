"""The engine's side of a batched run (extension ``batched_draws``).

:func:`replay_blocks` packs what the engine knows before a run (observations,
a controller's known values) into the ``Run`` message; :func:`record_blocks`
enters the blocks a simulator reports into the trace, numbered exactly as if
each draw had come as its own message. The simulator's half is
:mod:`ppx.simulator.local_draws`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch
from numpy.typing import ArrayLike

from ppx.addressing import split_address
from ppx.engine.recorder import Recorder
from ppx.errors import ProtocolError
from ppx.protocol import messages as m

__all__ = ["record_blocks", "replay_blocks"]


def replay_blocks(
    observed: Mapping[str, ArrayLike], known: Mapping[str, ArrayLike] | None
) -> tuple[m.ValueBlock, ...]:
    """``Run.replay`` for a run: the observations, then the controller's known values.

    Known values at observed addresses are left out: observations win, as in
    the recorder. Consecutive instances of one stem and shape travel as one block.
    """
    blocks = []
    observed_sites: set[tuple[str, int]] = set()
    for key, value in observed.items():
        split = split_address(key)
        if split is None:
            blocks.append(m.ValueBlock(key, 0, _rows([value])))
        else:
            observed_sites.add(split)
            blocks.append(m.ValueBlock(split[0], split[1], _rows([value])))
    if not known:
        return tuple(blocks)
    by_stem: dict[str, list[tuple[int, ArrayLike]]] = {}
    for address, value in known.items():
        split = split_address(address)
        if split is None or split in observed_sites or split[0].rsplit("__", 1)[0] in observed:
            continue
        by_stem.setdefault(split[0], []).append((split[1], value))
    for stem, items in by_stem.items():
        blocks.extend(_runs(stem, sorted(items, key=lambda item: item[0])))
    return tuple(blocks)


def _runs(stem: str, items: list[tuple[int, ArrayLike]]) -> list[m.ValueBlock]:
    """One block per run of consecutive instances with one value shape."""
    blocks = []
    start = 0
    for i in range(1, len(items) + 1):
        if (
            i == len(items)
            or items[i][0] != items[i - 1][0] + 1
            or np.shape(items[i][1]) != np.shape(items[i - 1][1])
        ):
            run = items[start:i]
            blocks.append(m.ValueBlock(stem, run[0][0], _rows([v for _, v in run])))
            start = i
    return blocks


def _rows(values: list[ArrayLike]) -> np.ndarray:
    return np.array(
        [
            np.asarray(v.numpy(force=True) if isinstance(v, torch.Tensor) else v, dtype=np.float64)
            for v in values
        ]
    )


def _record_samples(recorder: Recorder, block: m.DrawBlock) -> None:
    if block.distribution is None or block.values is None:
        raise ProtocolError(f"sample block at {block.address!r} without distribution or values")
    values = np.asarray(block.values, dtype=np.float64)
    recorder.local_block(block.address, block.name, block.distribution, values, block.control)


def _rows_of(block: m.DrawBlock) -> list[np.ndarray] | list[None]:
    """One value per statement of the block (None: an observe or tag without one)."""
    return [None] if block.values is None else list(np.asarray(block.values, dtype=np.float64))


def _record_observes(recorder: Recorder, block: m.DrawBlock) -> None:
    for value in _rows_of(block):
        recorder.observe(block.address, block.name, block.distribution, value)


def _record_tags(recorder: Recorder, block: m.DrawBlock) -> None:
    for value in _rows_of(block):
        tagged = None if value is None else torch.from_numpy(np.asarray(value))
        recorder.tag(block.name or block.address, tagged)


_RECORD: dict[str, Callable[[Recorder, m.DrawBlock], None]] = {
    "sample": _record_samples,
    "observe": _record_observes,
    "tag": _record_tags,
}


def record_blocks(recorder: Recorder, blocks: tuple[m.DrawBlock, ...]) -> None:
    """Enter the simulator's local draws into the trace, numbered as single draws."""
    for block in blocks:
        _RECORD[block.statement](recorder, block)
