"""The C++ server fed a corpus of valid, broken and random messages (tests/fuzz_corpus.py).

Each input goes from a raw pyzmq REQ socket, half of them between runs and half
mid-run (as the answer to a draw). The server must answer every one with a
well-formed PPX message, still serve a normal run afterwards and stop cleanly.
The default tier feeds the regular build; the extended tier builds the server
with AddressSanitizer and UndefinedBehaviorSanitizer (-DPPX_SANITIZE=ON) and
also requires a stderr free of their reports. A message over the size limit
($PPX_MAX_MESSAGE_BYTES) costs its sender the connection, not the server its life.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
import zmq
from fuzz_corpus import corpus, valid_messages
from zmq.utils.monitor import recv_monitor_message

import ppx
from ppx.cpp import build_cpp_simulators, missing_toolchain
from ppx.protocol import (
    CAPABILITIES,
    DISTRIBUTION_KINDS,
    PROTOCOL_VERSION,
    decode,
    distribution_kind,
    encode,
)
from ppx.protocol import messages as m

torch.set_num_threads(1)

HANDSHAKE = encode(m.Handshake("fuzz", PROTOCOL_VERSION, CAPABILITIES))
RUN = encode(m.Run())
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
SIMULATORS = ("gaussian", "faulty", "branching", "rejection")


class Feeder:
    """A raw REQ socket that sends bytes and decodes the reply (which must be PPX)."""

    def __init__(self, address: str, process: subprocess.Popen) -> None:
        self.process = process
        self.socket = zmq.Context.instance().socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)
        self.replies = 0

    def ask(self, data: bytes, name: str) -> m.Message:
        self.socket.send(data)
        if not self.socket.poll(20_000):
            state = "exited" if self.process.poll() is not None else "is alive but silent"
            raise AssertionError(f"no answer to input {name!r}: the server {state}")
        self.replies += 1
        return decode(self.socket.recv())  # raises if the reply is not a PPX message

    def feed(self, inputs: list[tuple[str, bytes]]) -> None:
        """Every input; mid-run (after a Run, as the first draw's answer) the odd
        ones and every SampleResult, the run then driven on for a few draws."""
        self.ask(HANDSHAKE, "handshake")
        for i, (name, data) in enumerate(inputs):
            mid_run = i % 2 == 1 or name.startswith("SampleResult")
            if mid_run and not isinstance(self.ask(RUN, "run"), m.Sample):
                self.ask(HANDSHAKE, "handshake")  # an input changed the terms: shake again
                assert isinstance(self.ask(RUN, "run"), m.Sample)
            reply = self.ask(data, name)
            if mid_run:
                self.drive(reply, name)

    def drive(self, reply: m.Message, name: str, draws: int = 3) -> None:
        """Answer the run's next ``draws`` requests as an engine would (prior values)."""
        for _ in range(draws):
            if isinstance(reply, m.Sample):
                reply = self.ask(encode(m.SampleResult(reply.distribution.sample())), name)
            elif isinstance(reply, (m.Observe, m.Tag)):
                answer = m.ObserveResult() if isinstance(reply, m.Observe) else m.TagResult()
                reply = self.ask(encode(answer), name)
            else:
                return

    def close(self) -> None:
        self.socket.close()


def survive_corpus(bin_dir: Path, name: str, address: str) -> tuple[int, str]:
    """Feed the corpus to ``name``, run it normally, stop it; returns (replies, stderr)."""
    env = dict(os.environ, ASAN_OPTIONS="abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    # stderr to a file, not a pipe: a full pipe would block the server's error lines.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [str(bin_dir / name), "--address", address],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=env,
        )
        feeder = Feeder(address, process)
        try:
            feeder.feed(corpus())
            with ppx.RemoteModel(address) as model:
                assert len(model.run()) >= 3  # still serving, correctly
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        finally:
            feeder.close()
            if process.poll() is None:
                process.kill()
                process.wait()
        log.seek(0)
        stderr = log.read()
    assert process.returncode == 0, stderr[-4000:]
    return feeder.replies, stderr


@pytest.fixture(scope="module")
def toolchain() -> None:
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")


def test_corpus_has_every_message_type_and_broken_inputs():
    valid = [decode(data) for _, data in valid_messages()]
    assert {type(message) for message in valid} == set(m.MESSAGE_TYPES)
    samples = {distribution_kind(s.distribution) for s in valid if isinstance(s, m.Sample)}
    assert samples == set(DISTRIBUTION_KINDS)
    inputs = corpus()
    names = [name for name, _ in inputs]
    assert len(names) == len(set(names)) > 1000
    for broken in ("/cut", "/flip", "/byte", "/word", "random"):
        assert any(broken in name for name in names), broken
    assert ("empty", b"") in inputs
    assert inputs == corpus()  # deterministic


@pytest.mark.parametrize("name", SIMULATORS)
def test_server_answers_every_input_of_the_corpus(toolchain, ipc_address, name):
    replies, _ = survive_corpus(build_cpp_simulators(targets=SIMULATORS), name, ipc_address)
    assert replies > len(corpus())


@pytest.mark.slow
@pytest.mark.parametrize("name", SIMULATORS)
def test_sanitized_server_survives_the_corpus_without_reports(toolchain, ipc_address, name):
    bin_dir = build_cpp_simulators(sanitize=True, targets=SIMULATORS)
    replies, stderr = survive_corpus(bin_dir, name, ipc_address)
    assert replies > len(corpus())
    reports = [line for line in stderr.splitlines() if any(r in line for r in SANITIZER_REPORTS)]
    assert not reports, stderr[-8000:]


def test_an_oversized_message_drops_its_sender_and_the_server_keeps_serving(toolchain, ipc_address):
    limit = 64 * 1024
    bin_dir = build_cpp_simulators(targets=SIMULATORS)
    process = subprocess.Popen(
        [str(bin_dir / "gaussian"), "--address", ipc_address],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PPX_MAX_MESSAGE_BYTES=str(limit)),
    )
    feeder = Feeder(ipc_address, process)
    monitor = feeder.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        assert isinstance(feeder.ask(bytes(limit - 64), "under the limit"), m.Reset)
        feeder.socket.send(bytes(4 * limit))  # over it: ZeroMQ drops this connection
        assert monitor.poll(10_000), "the server did not drop the sender of an oversized message"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED
        with ppx.RemoteModel(ipc_address) as model:
            assert len(model.run()) == 3
        assert process.poll() is None
    finally:
        feeder.socket.disable_monitor()
        monitor.close()
        feeder.close()
        process.kill()
        process.wait()


def test_a_malformed_size_limit_is_refused_at_start(toolchain, ipc_address):
    bin_dir = build_cpp_simulators(targets=SIMULATORS)
    done = subprocess.run(
        [str(bin_dir / "gaussian"), "--address", ipc_address],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ, PPX_MAX_MESSAGE_BYTES="lots"),
    )
    assert done.returncode == 1
    assert "PPX_MAX_MESSAGE_BYTES='lots' must be a positive number of bytes" in done.stderr
