"""Bad input and faults: each gives a clear error, and servers keep serving."""

from __future__ import annotations

import sys
import time

import pytest
import torch
import zmq
from conftest import served, simulator_argv
from torch.distributions import Normal

import ppx
from ppx.protocol import decode, encode
from ppx.protocol import messages as m
from ppx.simulators import gaussian

FLAKY_SIMULATOR = """
import os, sys, time, torch, ppx
from torch.distributions import Normal
mode = sys.argv[1]
def simulator():
    x = ppx.sample(Normal(0.0, 1.0), name="x")
    if mode == "crash":
        os._exit(3)
    if mode == "crash_once" and not os.path.exists(sys.argv[2]):
        open(sys.argv[2], "w").close()
        os._exit(4)
    if mode == "hang":
        time.sleep(3600)
    return x
ppx.serve(simulator, sys.argv[sys.argv.index("--address") + 1], model_name="flaky-" + mode)
"""


def raw_request(address: str, data: bytes) -> m.Message:
    socket = zmq.Context.instance().socket(zmq.REQ)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(address)
    try:
        socket.send(data)
        assert socket.poll(5000), "server did not answer"
        return decode(socket.recv())
    finally:
        socket.close()


def test_server_survives_malformed_buffers(serve_in_thread):
    with serve_in_thread(gaussian.model) as address:
        for junk in (b"", b"\x01\x02", b"garbage garbage garbage", encode(m.Run())[:-3]):
            reply = raw_request(address, junk)
            assert isinstance(reply, (m.Reset, m.Error))
        with ppx.RemoteModel(address) as model:  # still serving
            assert len(model.run()) == 3


def test_error_report_for_malformed_buffer_after_handshake(serve_in_thread):
    """An engine that announced error_report gets an Error naming what was wrong."""
    with serve_in_thread(gaussian.model) as address:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(address)
        try:
            socket.send(encode(m.Handshake("test", "1.1.0", ("error_report",))))
            assert socket.poll(5000)
            assert isinstance(decode(socket.recv()), m.HandshakeResult)
            socket.send(b"\x00" * 3)
            assert socket.poll(5000)
            reply = decode(socket.recv())
        finally:
            socket.close()
    assert isinstance(reply, m.Error) and reply.error_type == "ProtocolError"
    assert reply.message


def test_simulator_exception_reaches_engine_and_server_keeps_serving(serve_in_thread):
    calls = []

    def simulator() -> torch.Tensor:
        x = ppx.sample(Normal(0.0, 1.0), name="x")
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("detector geometry not loaded")
        return x

    with serve_in_thread(simulator, "detector") as address, ppx.RemoteModel(address) as model:
        with pytest.raises(ppx.SimulatorError) as info:
            model.run()
        error = info.value
        assert error.error_type == "RuntimeError"
        assert "detector geometry not loaded" in str(error)
        assert "detector" in str(error) and error.address == "x"
        assert [d.name for d in error.trace] == ["x"]  # what was recorded is kept
        assert model.run().result is not None  # next run works


def test_invalid_parameters_from_simulator_name_address_and_simulator(serve_in_thread):
    """NaN / negative scale / bad probs that skip torch's checks are caught by the engine."""
    bad = [
        Normal(torch.tensor(float("nan")), 1.0, validate_args=False),
        Normal(0.0, -1.0, validate_args=False),
        torch.distributions.Categorical(torch.tensor([-0.5, 1.5]), validate_args=False),
    ]
    state = {"i": 0}

    def simulator() -> None:
        ppx.sample(Normal(0.0, 1.0), name="fine")
        if state["i"] is not None:
            ppx.sample(bad[state["i"]], name="broken")

    with serve_in_thread(simulator, "calorimeter") as address, ppx.RemoteModel(address) as model:
        for i in range(len(bad)):
            state["i"] = i
            with pytest.raises(ppx.InvalidDistribution) as info:
                model.run()
            assert "calorimeter" in str(info.value) and "broken" in str(info.value)
            assert [d.name for d in info.value.trace] == ["fine"]
        state["i"] = None
        assert len(model.run()) == 1  # the server still serves


def test_torch_validation_error_names_simulator_line(serve_in_thread):
    def simulator() -> None:
        ppx.sample(Normal(0.0, 1.0), name="first")
        ppx.sample(Normal(0.0, -2.0), name="second")

    with serve_in_thread(simulator, "negscale") as address, ppx.RemoteModel(address) as model:
        with pytest.raises(ppx.SimulatorError) as info:
            model.run()
    assert info.value.error_type == "ValueError"
    assert "test_faults.py" in str(info.value) and "negscale" in str(info.value)


def test_unsupported_distribution_is_reported(serve_in_thread):
    def simulator() -> None:
        ppx.sample(torch.distributions.StudentT(3.0), name="t")

    with serve_in_thread(simulator) as address, ppx.RemoteModel(address) as model:
        with pytest.raises(ppx.SimulatorError, match="StudentT"):
            model.run()


@pytest.fixture
def flaky_script(tmp_path):
    path = tmp_path / "flaky.py"
    path.write_text(FLAKY_SIMULATOR)
    return str(path)


def test_crashed_simulator_is_reported_and_restarted(flaky_script):
    model = ppx.RemoteModel.spawn([sys.executable, flaky_script, "crash"], retries=0, timeout=30)
    try:
        started = time.monotonic()
        with pytest.raises(ppx.SimulatorCrashed) as info:
            model.run()
        assert time.monotonic() - started < 10
        assert "exited with code 3" in str(info.value) and "'x__Normal__1'" in str(info.value)
        model.restart()
        assert model.process.alive() is None
    finally:
        model.close()
    assert model.process.pid is None  # stopped


def test_crashed_spawn_is_restarted_and_run_retried(flaky_script, tmp_path):
    marker = str(tmp_path / "crashed-once")
    argv = [sys.executable, flaky_script, "crash_once", marker]
    with ppx.RemoteModel.spawn(argv, retries=1) as model:
        first_pid = model.process.pid
        trace = model.run()
        assert [d.name for d in trace] == ["x"]
        assert model.process.pid != first_pid  # a new process served the retried run


def test_hung_simulator_times_out(flaky_script):
    with ppx.RemoteModel.spawn(
        [sys.executable, flaky_script, "hang"], retries=0, timeout=1.0
    ) as model:
        started = time.monotonic()
        with pytest.raises(ppx.SimulatorTimeout, match="within 1.0 s"):
            model.run()
        assert time.monotonic() - started < 5
        process = model.process
    assert process.pid is None


def test_unreachable_address_times_out_at_handshake(ipc_address):
    with pytest.raises(ppx.SimulatorTimeout):
        ppx.RemoteModel(ipc_address, handshake_timeout=0.5)


def test_incompatible_handshake_fails_with_both_versions(serve_in_thread):
    with serve_in_thread(gaussian.model) as address:
        reply = raw_request(address, encode(m.Handshake("future", "2.0.0", ())))
        assert isinstance(reply, m.HandshakeResult) and reply.protocol_version == "1.1.0"


def test_engine_rejects_incompatible_simulator(ipc_address, monkeypatch):
    import ppx.simulator.server

    monkeypatch.setattr(ppx.simulator.server, "PROTOCOL_VERSION", "9.0.0")
    with served(gaussian.model, ipc_address):
        with pytest.raises(ppx.HandshakeError, match=r"1\.1\.0.*9\.0\.0"):
            ppx.RemoteModel(ipc_address)


def test_spawned_process_is_cleaned_up():
    model = ppx.RemoteModel.spawn(simulator_argv("gaussian"))
    process = model.process
    popen = process._popen
    model.close()
    assert popen.poll() is not None
