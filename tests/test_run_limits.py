"""Bounded runs: a trace-length limit on the engine, a message-size limit on both sockets."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import zmq
from conftest import served
from torch.distributions import Normal, Uniform

import ppx
from ppx.protocol import DEFAULT_MAX_MESSAGE_BYTES, MAX_MESSAGE_ENV, message_limit
from ppx.simulators import gaussian


class Switch:
    """A simulator that draws forever while ``endless``, else three times."""

    def __init__(self) -> None:
        self.endless = True

    def __call__(self) -> int:
        steps = 0
        while self.endless or steps < 3:
            ppx.sample(Normal(0.0, 1.0), name="step")
            steps += 1
        return steps


class ManyLocalDraws:
    """``draws`` uncontrolled sampler draws (reported in blocks when served), then one sample."""

    def __init__(self, draws: int) -> None:
        self.draws = draws

    def __call__(self) -> torch.Tensor:
        flat = ppx.sampler(Uniform(0.0, 1.0), name="flat")
        total = sum(flat() for _ in range(self.draws))
        return ppx.sample(Normal(total, 1.0), name="last")


def assert_too_long(error: ppx.TraceTooLong, simulator: str, address: str, limit: int) -> None:
    text = str(error)
    assert f"simulator {simulator!r}" in text and f"more than {limit} draws" in text
    assert "max_trace_length" in text and repr(address) in text
    assert error.simulator == simulator and error.address == address
    assert len(error.trace) <= limit


# -- the trace limit ---------------------------------------------------------------------
def test_an_endless_served_simulator_hits_the_trace_limit_and_the_next_run_works(ipc_address):
    simulator = Switch()
    with served(simulator, ipc_address, "endless"):
        with ppx.RemoteModel(ipc_address, max_trace_length=300) as model:
            with pytest.raises(ppx.TraceTooLong) as info:
                model.run()
            assert_too_long(info.value, "endless", "step__Normal__301", 300)
            assert ipc_address in str(info.value) and len(info.value.trace) == 300
            simulator.endless = False
            trace = model.run()  # the simulator abandoned the endless run: in sync again
            assert len(trace) == 3 and int(trace.result) == 3


def test_draws_reported_in_blocks_count_towards_the_limit(ipc_address):
    simulator = ManyLocalDraws(400)
    with served(simulator, ipc_address, "blocks"):
        with ppx.RemoteModel(ipc_address, max_trace_length=250) as model:
            assert "batched_draws" in model.capabilities
            with pytest.raises(ppx.TraceTooLong) as info:
                model.run()
            assert_too_long(info.value, "blocks", "flat__Uniform__251", 250)
            simulator.draws = 100
            assert len(model.run()) == 101


def test_a_local_model_stops_an_endless_simulator_too():
    simulator = Switch()
    model = ppx.LocalModel(simulator, name="endless", max_trace_length=200)
    with pytest.raises(ppx.TraceTooLong) as info:
        model.run()
    assert_too_long(info.value, "endless", "step__Normal__201", 200)
    with pytest.raises(ppx.TraceTooLong) as info:
        ppx.LocalModel(ManyLocalDraws(300), "blocks", max_trace_length=250).run()
    assert_too_long(info.value, "blocks", "flat__Uniform__251", 250)
    simulator.endless = False
    assert len(model.run()) == 3
    assert len(ppx.LocalModel(ManyLocalDraws(2000), max_trace_length=None).run()) == 2001


def test_the_limits_travel_with_the_model_to_other_processes(serve_in_thread):
    from ppx.engine.model_spec import ModelSpec

    spec = ModelSpec.of(ppx.LocalModel(gaussian.model, max_trace_length=7))
    assert spec.build().max_trace_length == 7
    with (
        serve_in_thread(gaussian.model) as address,
        ppx.RemoteModel(address, max_trace_length=9, max_message_bytes=10**6) as model,
        ModelSpec.of(model).build() as rebuilt,  # what a Dask worker builds
    ):
        assert isinstance(rebuilt, ppx.RemoteModel) and rebuilt is not model
        assert rebuilt.max_trace_length == 9 and rebuilt.max_message_bytes == 10**6


# -- the message size limit --------------------------------------------------------------
def test_an_oversized_reply_is_dropped_with_a_clear_error_and_the_server_survives(ipc_address):
    size = {"n": 50_000}  # 400 kB of float64

    def big_result() -> torch.Tensor:
        ppx.sample(Normal(0.0, 1.0), name="x")
        return torch.zeros(size["n"])

    with served(big_result, ipc_address, "bigresult"):
        with ppx.RemoteModel(ipc_address, max_message_bytes=100_000, timeout=20) as model:
            started = time.monotonic()
            with pytest.raises(ppx.SimulatorDisconnected) as info:
                model.run()
            assert time.monotonic() - started < 10  # the drop is seen, not the 20 s timeout
            text = str(info.value)
            assert "'bigresult'" in text and ipc_address in text and "dropped" in text
            assert "100000 bytes" in text and MAX_MESSAGE_ENV in text
            size["n"] = 10
            assert model.run().result.shape == (10,)


def test_an_oversized_request_is_dropped_and_the_server_survives(ipc_address):
    with served(gaussian.model, ipc_address, "gum", max_message_bytes=20_000):
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(ipc_address)
        try:
            socket.send(b"x" * 50_000)  # not even decoded: ZeroMQ drops it with the connection
            assert not socket.poll(500)
        finally:
            socket.close()
        with ppx.RemoteModel(ipc_address, timeout=20) as model:
            big = {"obs0": np.zeros(5_000), "obs1": 9.0}  # travels in the Run: 40 kB
            with pytest.raises(ppx.SimulatorDisconnected, match="'gum'.*dropped"):
                model.run(observe=big)
            assert model.run(observe={"obs0": 8.0, "obs1": 9.0}).draw("obs1").observed


def test_the_message_limit_comes_from_the_keyword_the_environment_or_the_default(monkeypatch):
    monkeypatch.delenv(MAX_MESSAGE_ENV, raising=False)
    assert message_limit() == DEFAULT_MAX_MESSAGE_BYTES == 256 * 2**20
    monkeypatch.setenv(MAX_MESSAGE_ENV, "4096")
    assert message_limit() == 4096 and message_limit(100) == 100
    monkeypatch.setenv(MAX_MESSAGE_ENV, "lots")
    with pytest.raises(ValueError, match=f"{MAX_MESSAGE_ENV} must be a positive whole number"):
        message_limit()
    with pytest.raises(ValueError, match="max_message_bytes must be a positive"):
        message_limit(0)


def test_an_oversized_message_mid_run_leaves_the_model_usable(ipc_address):
    """The server waits for the dropped run's answer until the engine's new socket asks."""
    big = {"on": True}

    def tagged() -> torch.Tensor:
        if big["on"]:
            ppx.tag(torch.zeros(50_000), name="big")  # travels with the next Sample: 400 kB
        return ppx.sample(Normal(0.0, 1.0), name="y")

    with served(tagged, ipc_address, "tagged", engine_timeout=None):
        with ppx.RemoteModel(ipc_address, max_message_bytes=100_000, timeout=5) as model:
            with pytest.raises(ppx.SimulatorDisconnected, match="'tagged'"):
                model.run()
            big["on"] = False
            assert [d.name for d in model.run()] == ["y"]  # no engine_timeout: recognized
