"""Run and RunResult: the engine starts one execution, the simulator reports its result."""

from __future__ import annotations

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
from .base import MessageBody, TemplatedBody
from .blocks import DrawBlock, ValueBlock, read_draw_blocks, read_value_blocks, write_blocks

__all__ = ["Run", "RunResult"]

_RUN = TableSpec(RunTable, "record", "seed", "replay")
_RESULT = TableSpec(RunResultTable, "result", "draws")


@dataclass(frozen=True, slots=True)
class Run(MessageBody):
    """Engine -> simulator: execute the program once.

    The fields are the ``batched_draws`` extension: with ``record``, the
    simulator makes its uncontrolled draws itself (from ``seed``) and reports
    them in bulk; ``replay`` holds values it uses without asking.
    """

    BODY: ClassVar[int] = BodyType.Run

    record: bool = False
    seed: int = 0
    replay: tuple[ValueBlock, ...] = ()

    def write(self, b: Builder) -> int:
        """Write the Run table (without extensions: the empty table pyprob sends)."""
        replay = write_blocks(b, self.replay)
        return _RUN.write(b, True if self.record else None, self.seed or None, replay)

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

    def layout(self) -> tuple[()] | None:
        """Nothing but the result's shape; not templated with a bulk report."""
        return None if self.draws else ()

    def tensors(self) -> list[np.ndarray]:
        """The result."""
        return [as_float64(self.result)]

    def write_template(self, b: Builder, arrays: list[np.ndarray]) -> int:
        """Write this RunResult with ``arrays[0]`` as its result."""
        result = write_tensor(b, arrays[0])
        return _RESULT.write(b, result, write_blocks(b, self.draws))
