"""Inference engines: each takes a :class:`ppx.Model` and returns a posterior object."""

from __future__ import annotations

from ppx.inference.empirical import Empirical
from ppx.inference.importance_sampling import importance_sampling

__all__ = ["Empirical", "importance_sampling"]
