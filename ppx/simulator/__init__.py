"""The simulator side of PPX: what a simulator calls, and serving it over the protocol.

* :mod:`~ppx.simulator.primitives`: ``sample``, ``observe``, ``tag``, ``sampler``, ``scope``;
* :mod:`~ppx.simulator.server`: ``serve``, the ZeroMQ REP server running the simulator;
* :mod:`~ppx.simulator.local_draws`: the simulator's half of batched runs.
"""
