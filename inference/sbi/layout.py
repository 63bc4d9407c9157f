"""Where SBI parameters and data live in a trace, and how they flatten to vectors.

A :class:`Layout` names the parameter draws (``theta``) and the data (``x``) of a
simulator by name or address, with the shape each one had in a probe run. It
turns a :class:`ppx.Trace` into one flat float32 ``theta`` and one flat float32
``x`` vector, turns a flat ``theta`` back into per-address values for the
engine to impose, and checks the shape of an observation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias, TypedDict

import numpy as np
import torch

from ppx.inference.records import Value, to_numpy
from ppx.trace import Draw, Trace

__all__ = ["Block", "Layout", "Observation"]

#: The value of one data block: a tensor, an array, numbers.
ArrayLike: TypeAlias = torch.Tensor | np.ndarray | Sequence[float] | float
#: An observation: the flat data vector, the single data block, or values by data key.
Observation: TypeAlias = ArrayLike | Mapping[str, ArrayLike]


class _BlockJSON(TypedDict):
    key: str
    address: str
    shape: list[int]
    kind: str


@dataclass(frozen=True)
class Block:
    """One named piece of ``theta`` or ``x``.

    Attributes:
        key: the name or address the user gave.
        address: the full address in the probe run (the tag name for a tag).
        shape: the value's shape.
        kind: ``"sample"``, ``"observe"`` or ``"tag"``.
    """

    key: str
    address: str
    shape: tuple[int, ...]
    kind: str = "sample"

    @property
    def size(self) -> int:
        """Number of scalars in the value."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """The parameters and data of a simulator, as blocks of flat vectors.

    Attributes:
        simulator: the simulator's name (for messages and records).
        parameters: blocks of ``theta``, in order.
        data: blocks of ``x``, in order.
    """

    simulator: str
    parameters: tuple[Block, ...]
    data: tuple[Block, ...]

    @property
    def theta_dim(self) -> int:
        """Length of the flat parameter vector."""
        return sum(block.size for block in self.parameters)

    @property
    def x_dim(self) -> int:
        """Length of the flat data vector."""
        return sum(block.size for block in self.data)

    @classmethod
    def probe(
        cls, trace: Trace, simulator: str, parameters: Sequence[str], data: Sequence[str]
    ) -> Layout:
        """The layout of ``parameters`` and ``data`` as found in one run's ``trace``.

        Raises:
            ValueError: a parameter is not a latent draw of the run, or a datum
                was not produced by it; the message lists what the run has.
        """
        if not parameters or not data:
            raise ValueError("need at least one parameter and one data name or address")
        blocks = [_parameter_block(trace, key, simulator) for key in parameters]
        observed = [_data_block(trace, key, simulator) for key in data]
        return cls(simulator, tuple(blocks), tuple(observed))

    def flatten(self, trace: Trace, run: int) -> tuple[np.ndarray, np.ndarray]:
        """``(theta, x)`` of one run as flat float32 vectors."""
        theta = [self._value(trace, block, run, "parameter") for block in self.parameters]
        x = [self._value(trace, block, run, "data") for block in self.data]
        return np.concatenate(theta), np.concatenate(x)

    def _value(self, trace: Trace, block: Block, run: int, role: str) -> np.ndarray:
        draw = _find_draw(trace, block.key)
        if draw is None and (role == "parameter" or block.key not in trace.tags):
            raise ValueError(
                f"run {run} of simulator {self.simulator!r} did not produce {role} "
                f"{block.key!r}; {_inventory(trace)}"
            )
        value = trace.tags[block.key] if draw is None else _draw_value(draw)
        array = np.asarray(to_numpy(value), dtype=np.float32)
        if array.shape != block.shape:
            raise ValueError(
                f"run {run} of simulator {self.simulator!r}: {role} {block.key!r} has shape "
                f"{array.shape}, but {block.shape} in the first run"
            )
        return array.reshape(-1)

    def split_theta(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-key values of one flat ``theta`` (what the engine imposes on a run)."""
        values, start = {}, 0
        for block in self.parameters:
            values[block.key] = theta[start : start + block.size].reshape(block.shape)
            start += block.size
        return values

    def observation(self, x_obs: Observation) -> torch.Tensor:
        """The flat float32 data vector of ``x_obs``, checked against the layout.

        Arguments:
            x_obs: a flat vector of length :attr:`x_dim` (optionally with a leading
                batch axis of 1), the value of the single data block in its own
                shape, or a mapping from each data key to its value.

        Raises:
            ValueError: the shape (or the keys) do not match; the message states
                what was expected and what was given.
        """
        if isinstance(x_obs, Mapping):
            return self._observation_from_mapping(x_obs)
        value = torch.as_tensor(to_numpy(x_obs), dtype=torch.float32)
        accepted = {(self.x_dim,), (1, self.x_dim)}
        if len(self.data) == 1:
            accepted.add(self.data[0].shape)
        if tuple(value.shape) not in accepted:
            raise ValueError(
                f"observation for simulator {self.simulator!r} has shape {tuple(value.shape)}; "
                f"expected {self._expected()}"
            )
        return value.reshape(self.x_dim)

    def _observation_from_mapping(self, x_obs: Mapping[str, ArrayLike]) -> torch.Tensor:
        keys = [block.key for block in self.data]
        if sorted(x_obs) != sorted(keys):
            raise ValueError(
                f"observation for simulator {self.simulator!r} has keys {sorted(x_obs)}; "
                f"expected {keys}"
            )
        parts = []
        for block in self.data:
            value = torch.as_tensor(to_numpy(x_obs[block.key]), dtype=torch.float32)
            if tuple(value.shape) != block.shape and value.numel() != block.size:
                raise ValueError(
                    f"observation {block.key!r} for simulator {self.simulator!r} has shape "
                    f"{tuple(value.shape)}; expected {block.shape}"
                )
            parts.append(value.reshape(-1))
        return torch.cat(parts)

    def _expected(self) -> str:
        shapes = ", ".join(f"{block.key}: {block.shape}" for block in self.data)
        return f"shape ({self.x_dim},) (data {shapes})"

    def to_json(self) -> str:
        """The layout as a JSON string (stored with simulations and posteriors)."""
        return json.dumps(
            {
                "simulator": self.simulator,
                "parameters": [_block_json(b) for b in self.parameters],
                "data": [_block_json(b) for b in self.data],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Layout:
        """The layout saved by :meth:`to_json`."""
        raw = json.loads(text)
        parameters = tuple(_block_from_json(b) for b in raw["parameters"])
        return cls(raw["simulator"], parameters, tuple(_block_from_json(b) for b in raw["data"]))

    @classmethod
    def of_arrays(cls, theta: torch.Tensor, x: torch.Tensor, simulator: str = "arrays") -> Layout:
        """A layout for bare arrays: one ``theta`` block and one ``x`` block."""
        theta_block = Block("theta", "theta", tuple(theta.shape[1:]))
        return cls(simulator, (theta_block,), (Block("x", "x", tuple(x.shape[1:])),))


def _block_json(block: Block) -> _BlockJSON:
    return {
        "key": block.key,
        "address": block.address,
        "shape": list(block.shape),
        "kind": block.kind,
    }


def _block_from_json(raw: _BlockJSON) -> Block:
    return Block(raw["key"], raw["address"], tuple(raw["shape"]), raw["kind"])


def _find_draw(trace: Trace, key: str) -> Draw | None:
    try:
        return trace.draw(key)
    except KeyError:
        return None


def _draw_value(draw: Draw) -> Value:
    """The draw's value; an observe without data is sampled from its distribution."""
    if draw.value is not None:
        return draw.value
    if draw.distribution is None:
        raise ValueError(f"draw {draw.address!r} has neither a value nor a distribution")
    return draw.distribution.sample()


def _shape(value: Value) -> tuple[int, ...]:
    return tuple(to_numpy(value).shape)


def _parameter_block(trace: Trace, key: str, simulator: str) -> Block:
    draw = _find_draw(trace, key)
    if draw is None or not draw.is_latent:
        what = "is not a draw" if draw is None else f"is an {draw.statement} with data"
        raise ValueError(
            f"parameter {key!r} {what} of simulator {simulator!r}: parameters must be latent "
            f"samples; {_inventory(trace)}"
        )
    return Block(key, draw.address, _shape(_draw_value(draw)), "sample")


def _data_block(trace: Trace, key: str, simulator: str) -> Block:
    draw = _find_draw(trace, key)
    if draw is not None:
        return Block(key, draw.address, _shape(_draw_value(draw)), draw.statement)
    if key in trace.tags:
        return Block(key, key, _shape(trace.tags[key]), "tag")
    raise ValueError(
        f"data {key!r} was not produced by simulator {simulator!r}; {_inventory(trace)}"
    )


def _inventory(trace: Trace) -> str:
    latent = [d.name or d.address for d in trace if d.is_latent]
    other = [d.name or d.address for d in trace if not d.is_latent]
    return (
        f"its samples are {latent}, its observes {other} and its tags {sorted(trace.tags)} "
        f"(names or full addresses)"
    )
