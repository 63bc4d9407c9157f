"""The metadata of a posterior: JSON-able facts (engine, model, observations, rates...)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ppx.inference.records import to_numpy, union_keys

__all__ = ["attribute", "merge_metadata", "to_json"]


def to_json(metadata: Mapping[str, object]) -> str:
    """``metadata`` as a JSON string (numpy and torch values become numbers and lists).

    Raises:
        TypeError: a value is not JSON-able.
    """
    return json.dumps(metadata, default=_jsonable)


def attribute(value: object) -> str | int | float | bool:
    """``value`` as an attribute of a data file: itself if a str or number, else JSON."""
    if isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=_jsonable)


def merge_metadata(metadatas: Sequence[Mapping[str, object]]) -> dict[str, object]:
    """Entries equal in every mapping as they are; the others as per-mapping lists.

    A list holds ``None`` where a mapping lacks the key.
    """
    merged: dict[str, object] = {}
    for key in union_keys([list(metadata) for metadata in metadatas]):
        encoded = {to_json({key: m[key]}) if key in m else None for m in metadatas}
        same = len(encoded) == 1 and None not in encoded
        merged[key] = metadatas[0][key] if same else [m.get(key) for m in metadatas]
    return merged


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        return to_numpy(value).tolist()
    raise TypeError(f"metadata must be JSON-able; got {type(value).__name__}: {value!r}")
