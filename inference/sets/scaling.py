"""Standardisation of a network's inputs and targets, stored with the network's weights.

Every set estimator scales ``theta``, events and latents to zero mean and unit
variance from a pilot batch before training, and undoes the scaling on the
way out. :class:`Standardizer` holds one such affine map as buffers, so it is
saved and loaded with the estimator's ``state_dict``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["Standardizer"]


class Standardizer(nn.Module):
    """``(x - loc) / scale`` over the last dimension of size ``features``.

    Arguments:
        features: size of the last dimension.
    """

    loc: Tensor
    scale: Tensor

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))

    @torch.no_grad()
    def fit(self, values: Tensor) -> Standardizer:
        """Take the mean and standard deviation of ``values`` ``(..., features)``."""
        flat = values.reshape(-1, self.loc.numel())
        self.loc.copy_(flat.mean(0))
        self.scale.copy_(flat.std(0).clamp_min(1e-6))
        return self

    def forward(self, values: Tensor) -> Tensor:
        """Standardise ``values`` ``(..., features)``."""
        return (values - self.loc) / self.scale

    def inverse(self, values: Tensor) -> Tensor:
        """Undo :meth:`forward`."""
        return values * self.scale + self.loc

    def log_abs_det(self) -> Tensor:
        """``log |d forward / d x|``: add it to a log-density of the standardised values."""
        return -self.scale.log().sum()
