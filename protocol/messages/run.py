"""Run and RunResult: the engine starts one execution, the simulator reports its result."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from flatbuffers import Builder
from numpy.typing import ArrayLike

from .._generated.ppx import Run as RunTable
from .._generated.ppx import RunResult as RunResultTable
from .._generated.ppx.MessageBody import MessageBody as BodyType
from ..reader import U64, Fields, byte, ref, scalar, tensor
from ..tables import TableSpec
from ..writer import as_float64, write_tensor
from .base import TemplatedBody
from .blocks import (
    DrawBlock,
    ValueBlock,
    blocks_layout,
    blocks_tensors,
    read_draw_blocks,
    read_value_blocks,
    write_template_blocks,
)

__all__ = ["Run", "RunResult"]

_RUN = TableSpec(RunTable, "record", "seed", "replay")
_RESULT = TableSpec(RunResultTable, "result", "draws")


@dataclass(frozen=True, slots=True)
class Run(TemplatedBody):
    """Engine -> simulator: execute the program once.

    The fields are the ``batched_draws`` extension: with ``record``, the
    simulator makes its uncontrolled draws itself (from ``seed``) and reports
    them in bulk; ``replay`` holds values it uses without asking.
    """

    BODY: ClassVar[int] = BodyType.Run

    record: bool = False
    seed: int = 0
    replay: tuple[ValueBlock, ...] = ()

    def layout(self) -> Hashable | None:
        """Record flag and replayed keys (an MCMC step repeats them); None without a seed."""
        if not self.seed:
            return None
        replay = blocks_layout(self.replay)
        return None if replay is None else (bool(self.record), replay)

    def tensors(self) -> list[np.ndarray]:
        """The seed (its uint64 bits seen as one float64: templates patch bytes), the values."""
        seed = np.array([self.seed], dtype="<u8").view("<f8")
        return [seed, *blocks_tensors(self.replay)]

    def write(self, b: Builder) -> int:
        """Write the Run table (without extensions: the empty table pyprob sends)."""
        if not self.seed:
            replay = write_template_blocks(b, self.replay, blocks_tensors(self.replay))
            return _RUN.write(b, True if self.record else None, None, replay)
        return self.write_template(b, self.tensors())

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this Run with the seed ``arrays[0]`` and ``arrays[1:]`` as replayed values."""
        replay = write_template_blocks(b, self.replay, arrays[1:])
        seed = int(arrays[0].view("<u8")[0])
        return _RUN.write(b, True if self.record else None, seed, replay)

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> Run:
        """The Run table at ``pos``."""
        record_id, seed_id, replay_id = _RUN.ids
        return cls(
            bool(byte(buf, pos, fields, record_id, 0)),
            scalar(buf, pos, fields, seed_id, U64),
            read_value_blocks(buf, pos, fields, replay_id),
        )


@dataclass(frozen=True, slots=True)
class RunResult(TemplatedBody):
    """Simulator -> engine: the program returned ``result``."""

    BODY: ClassVar[int] = BodyType.RunResult

    result: ArrayLike | None = None
    draws: tuple[DrawBlock, ...] = ()

    @classmethod
    def read(cls, buf: bytes, pos: int, fields: Fields) -> RunResult:
        """The RunResult table at ``pos``."""
        result_id, draws_id = _RESULT.ids
        result = tensor(buf, ref(buf, pos, fields, result_id))
        return cls(result, read_draw_blocks(buf, pos, fields, draws_id))

    def layout(self) -> Hashable | None:
        """The reported blocks' layouts; None where one is too long to template."""
        return blocks_layout(self.draws)

    def tensors(self) -> list[np.ndarray]:
        """The result, then the numbers of the reported blocks."""
        return [as_float64(self.result), *blocks_tensors(self.draws)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this RunResult with ``arrays`` in place of its :meth:`tensors`."""
        result = write_tensor(b, arrays[0])
        return _RESULT.write(b, result, write_template_blocks(b, self.draws, arrays[1:]))
