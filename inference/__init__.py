"""Inference engines: each takes a :class:`ppx.Model` and returns a posterior object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ppx.inference.diagnostics import diagnose
from ppx.inference.empirical import Empirical
from ppx.inference.ic import InferenceNetwork, generate_dataset, load_network
from ppx.inference.importance_sampling import importance_sampling
from ppx.inference.mcmc import rmh
from ppx.inference.rmh_kernel import RMHKernel, RMHState

if TYPE_CHECKING:
    from ppx.inference.sbi.posterior import load_posterior

__all__ = [
    "Empirical",
    "InferenceNetwork",
    "RMHKernel",
    "RMHState",
    "diagnose",
    "generate_dataset",
    "importance_sampling",
    "load_network",
    "load_posterior",
    "rmh",
]


def __getattr__(name: str) -> object:
    if name == "load_posterior":  # lazily: neural SBI is an optional extra
        from ppx.inference.sbi.posterior import load_posterior

        return load_posterior
    raise AttributeError(f"module 'ppx.inference' has no attribute {name!r}")
