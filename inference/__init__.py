"""Inference engines: each takes a :class:`ppx.Model` and returns a posterior object."""

from __future__ import annotations

from ppx.inference.empirical import Empirical
from ppx.inference.importance_sampling import importance_sampling
from ppx.inference.mcmc import rmh
from ppx.inference.rmh_kernel import RMHKernel, RMHState

__all__ = ["Empirical", "RMHKernel", "RMHState", "importance_sampling", "rmh"]
