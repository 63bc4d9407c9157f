"""Where networks train: ``device="auto"`` takes the GPU when one is present.

The trainers of :mod:`ppx.inference` take a ``device``. The set estimators
(:mod:`ppx.inference.sets`) train there and come back to the CPU when training
ends, so that queries and saved files do not depend on the machine that
trained them: an estimator trained on a GPU node answers on a laptop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar, cast

import torch
from torch import Tensor, nn

__all__ = ["on_device", "resolve_device", "training_on"]

Outputs = TypeVar("Outputs", bound=tuple[Tensor, ...])


def resolve_device(device: str | torch.device) -> str:
    """``"auto"``: ``"cuda"`` when a GPU is present, else ``"cpu"``; other values as given.

    Raises:
        ValueError: not a device torch knows, or a CUDA device where torch sees no GPU.
    """
    if str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        message = f"device={str(device)!r} is not a torch device: use auto, cpu or cuda"
        raise ValueError(message) from None
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}, but torch sees no CUDA GPU here; use 'auto'")
    return str(device)


@contextmanager
def training_on(module: nn.Module, device: str | torch.device) -> Iterator[torch.device]:
    """Move ``module`` to ``device`` (``"auto"`` resolved) while training, then back to the CPU."""
    chosen = torch.device(resolve_device(device))
    module.to(chosen)
    try:
        yield chosen
    finally:
        module.to("cpu")


def on_device(simulator: Callable[..., Outputs], device: torch.device) -> Callable[..., Outputs]:
    """``simulator`` whose tensors come back on ``device`` (simulators draw on the CPU)."""
    if device.type == "cpu":
        return simulator

    def moved(*args: object, **kwargs: object) -> Outputs:
        outputs = simulator(*args, **kwargs)
        return cast("Outputs", tuple(value.to(device) for value in outputs))

    return moved
