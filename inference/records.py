"""Records of a posterior: what one run leaves (a trace, or a mapping of values), as arrays.

A record is a :class:`ppx.Trace` or a mapping from name (or address) to value.
Engines that ship runs between processes keep compact records
(:func:`record_of`, :func:`compact`): latent values and tags as numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np
import torch

from ppx.errors import UnknownObservation
from ppx.trace import Draw, Trace

__all__ = [
    "Observations",
    "check_observed",
    "Record",
    "Value",
    "compact",
    "draw_key",
    "numeric",
    "record_keys",
    "record_of",
    "stack",
    "to_numpy",
    "union_keys",
]

#: The value of a draw or tag in a record.
Value: TypeAlias = torch.Tensor | np.ndarray | float | int | bool
#: A record: a whole trace, or values by name (or address).
Record: TypeAlias = Trace | Mapping[str, Value]
#: Observed values by observe name (or address): numbers, sequences, arrays or tensors.
Observations: TypeAlias = Mapping[str, Value | Sequence[float]]


def record_of(trace: Trace) -> dict[str, Value]:
    """A compact record of a trace for a posterior: latent values and tags.

    Keys are the draws' names, or their addresses where they have none (or
    where the name repeats an earlier draw's), as :func:`record_keys` does
    for traces.
    """
    record: dict[str, Value] = {}
    for draw in trace.draws:
        if draw.is_latent and draw.value is not None:
            key = draw.name if draw.name is not None and draw.name not in record else draw.address
            record[key] = draw.value
    record.update(trace.tags)
    return record


def compact(record: Mapping[str, Value]) -> dict[str, Value]:
    """``record`` with its tensors as numpy arrays (cheaper to pickle and to stack)."""
    return {
        key: value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        for key, value in record.items()
    }


def to_numpy(value: object) -> np.ndarray:
    """``value`` as a numpy array (tensors detached and moved to the CPU)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def draw_key(trace: Trace, draw: Draw) -> str:
    """The key of ``draw`` in ``trace``: its name, or its address where it has none
    or the name reaches another draw (a repeated name)."""
    return draw.name if draw.name is not None and trace.draw(draw.name) is draw else draw.address


def record_keys(record: Record) -> list[str]:
    """Latent draw names (addresses where unnamed) and tags of a trace; keys of a mapping."""
    if isinstance(record, Trace):
        keys = [draw_key(record, d) for d in record.samples]
        return keys + [tag for tag in record.tags if tag not in keys]
    if isinstance(record, Mapping):
        return list(record.keys())
    raise TypeError(f"a record is a ppx.Trace or a mapping, got {type(record).__name__}")


def union_keys(key_lists: Sequence[Sequence[str]]) -> list[str]:
    """Every key of ``key_lists``, once, in order of first appearance."""
    return list(dict.fromkeys(key for keys in key_lists for key in keys))


def stack(values: Sequence[object], name: str) -> np.ndarray:
    """Stack values (one torch op for all-tensor values), keeping their dtype.

    Raises:
        ValueError: the values have different shapes.
    """
    tensors = [value for value in values if isinstance(value, torch.Tensor)]
    try:
        if len(tensors) == len(values):
            with torch.no_grad():
                return torch.stack(tensors).cpu().numpy()
        return np.asarray(values)
    except (RuntimeError, TypeError, ValueError):
        try:
            return np.stack([to_numpy(value) for value in values])
        except ValueError as error:
            raise ValueError(f"values of {name!r} cannot be stacked: {error}") from None


def numeric(array: np.ndarray, name: str) -> np.ndarray:
    """``array`` itself, checked to hold numbers.

    Raises:
        TypeError: the values of ``name`` are not numbers (strings, objects).
    """
    if array.dtype.kind not in "biufc":
        raise TypeError(f"only numeric values can be saved; {name!r} has dtype {array.dtype}")
    return array


def check_observed(trace: Trace, observe: Observations, model_name: str) -> None:
    """Refuse observed names that no draw of ``trace`` has (a typo, another model).

    Raises:
        UnknownObservation: naming the unknown names and the program's observe statements.
    """
    known = {key for draw in trace for key in (draw.name, draw.address, draw.base)}
    unknown = sorted(set(observe) - known)
    if unknown:
        observed = sorted({d.name or d.address for d in trace if d.statement == "observe"})
        raise UnknownObservation(
            f"{model_name!r} has no draw named {', '.join(map(repr, unknown))}; "
            f"its observe statements: {', '.join(observed) or 'none'}"
        )
