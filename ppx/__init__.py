"""PPX: any simulator, in any language, as a probabilistic program.

Simulator side::

    mu = ppx.sample(torch.distributions.Normal(1.0, 5 ** 0.5), name="mu")
    ppx.observe(torch.distributions.Normal(mu, 2 ** 0.5), name="obs0")
    ppx.serve(simulator, "ipc:///tmp/gum")

Engine side::

    model = ppx.RemoteModel("ipc:///tmp/gum")     # or RemoteModel.spawn([...]), LocalModel(fn)
    post = ppx.inference.importance_sampling(model, observe={"obs0": 8.0}, num_traces=5000)
    post.mean("mu"), post.std("mu"), post.ess
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ppx.engine.controllers import Controller, PriorController, ReplayController
from ppx.engine.local import LocalModel
from ppx.engine.model import Model
from ppx.engine.model_spec import ModelSpec
from ppx.engine.remote import RemoteModel
from ppx.errors import (
    HandshakeError,
    InvalidDistribution,
    InvalidParameters,
    PPXError,
    ProtocolError,
    SimulatorCrashed,
    SimulatorDisconnected,
    SimulatorError,
    SimulatorTimeout,
    TraceTooLong,
    UnsupportedDistribution,
)
from ppx.simulator.primitives import observe, sample, sampler, scope, tag
from ppx.simulator.server import serve
from ppx.trace import Draw, Trace

__version__ = "0.1.0"

__all__ = [
    "Controller",
    "Draw",
    "HandshakeError",
    "InvalidDistribution",
    "InvalidParameters",
    "LocalModel",
    "Model",
    "ModelSpec",
    "PPXError",
    "PriorController",
    "ProtocolError",
    "RemoteModel",
    "ReplayController",
    "SimulatorCrashed",
    "SimulatorDisconnected",
    "SimulatorError",
    "SimulatorTimeout",
    "Trace",
    "TraceTooLong",
    "UnsupportedDistribution",
    "observe",
    "sample",
    "sampler",
    "scope",
    "serve",
    "tag",
]


def __getattr__(name: str) -> ModuleType:
    if name == "inference":  # imported lazily: engines pull in more dependencies
        return importlib.import_module("ppx.inference")
    raise AttributeError(f"module 'ppx' has no attribute {name!r}")
