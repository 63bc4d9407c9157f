"""Inference compilation: proposal networks trained on a simulator's prior traces.

::

    dataset = generate_dataset(model, "traces/", 100_000, ["obs0", "obs1"])   # or train online
    net = InferenceNetwork.fit(dataset)                                        # ppx train
    post = ppx.inference.importance_sampling(model, {"obs0": 8.0, "obs1": 9.0}, 1000, proposal=net)

References:
    Le, Baydin & Wood, "Inference Compilation and Universal Probabilistic
    Programming", AISTATS 2017. Baydin et al., "Etalumis", SC19 (arXiv:1907.03382).
"""

from __future__ import annotations

from ppx.inference.ic.controller import NetworkController
from ppx.inference.ic.dataset import TraceDataset, TraceRecord, TraceTypeSampler, record_from_trace
from ppx.inference.ic.generate import TraceWriter, generate_dataset
from ppx.inference.ic.network import NetworkConfig, ProposalNetwork
from ppx.inference.ic.train import InferenceNetwork, fit, load_network, save_network

__all__ = [
    "InferenceNetwork",
    "NetworkConfig",
    "NetworkController",
    "ProposalNetwork",
    "TraceDataset",
    "TraceRecord",
    "TraceTypeSampler",
    "TraceWriter",
    "fit",
    "generate_dataset",
    "load_network",
    "record_from_trace",
    "save_network",
]
