"""Fuzzing a served Python simulator: every hostile request gets a reply, and serving goes on.

A real ``python -m ppx.simulators.gaussian`` subprocess serves over ipc; a raw
pyzmq REQ socket (which works with a REP or a ROUTER server alike) sends it
what :mod:`test_fuzz_protocol` generates: mutated messages, random bytes and
valid messages of every type, both between runs and in place of the engine's
answer to a draw. Each must get a reply that decodes (an Error, typically)
within the timeout, the process must stay alive, and it must answer a valid
Handshake afterwards; at the end an engine still runs the model to completion.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq
from conftest import simulator_argv
from hypothesis import given
from test_fuzz_protocol import FAST, SLOW, buffers

import ppx
from ppx.engine.process import SimulatorProcess
from ppx.errors import PPXError
from ppx.protocol import CAPABILITIES, PROTOCOL_VERSION, decode, encode
from ppx.protocol import messages as m

REPLY_TIMEOUT_MS = 20_000  # generous: a loaded CI machine, never a timed assertion
STARTUP_TIMEOUT_MS = 120_000  # a restarted simulator imports torch first
HELLO = encode(m.Handshake("fuzz", PROTOCOL_VERSION, CAPABILITIES))
RUN = encode(m.Run())


class Peer:
    """A raw REQ socket that fails the test, and reconnects, when a reply does not come."""

    def __init__(
        self, address: str, process: SimulatorProcess | None, timeout_ms: int = REPLY_TIMEOUT_MS
    ) -> None:
        self.address = address
        self.process = process
        self.timeout_ms = timeout_ms
        self.socket = self._connect()

    def _connect(self) -> zmq.Socket:
        socket = zmq.Context.instance().socket(zmq.REQ)
        socket.setsockopt(zmq.LINGER, 0)
        socket.connect(self.address)
        return socket

    def ask(self, data: bytes) -> m.Message:
        """Send ``data``; the decoded reply (the server's replies are always valid).

        Waits in 100 ms slices, failing at once when the server process died.
        """
        self.socket.send(data)
        for _ in range(max(self.timeout_ms // 100, 1)):
            if self.socket.poll(100):
                return decode(self.socket.recv())
            if self.death() is not None:
                break
        self.socket.close(linger=0)  # a REQ socket without its reply is stuck
        self.socket = self._connect()
        died = self.death()
        raise AssertionError(f"no reply to {data!r}" + (f": {died}" if died else ""))

    def serving(self) -> None:
        """Restart the server if an earlier example killed it, so that each example (and
        Hypothesis's shrinking) sees a live server."""
        if self.death() is None:
            return
        assert self.process is not None
        self.process.restart()
        self.socket.close(linger=0)
        self.socket = self._connect()
        timeout, self.timeout_ms = self.timeout_ms, STARTUP_TIMEOUT_MS
        try:
            assert isinstance(self.ask(HELLO), m.HandshakeResult)
        finally:
            self.timeout_ms = timeout

    def death(self) -> str | None:
        """Why the server process stopped; None while it runs (or when none is watched)."""
        return None if self.process is None else self.process.alive()

    def close(self) -> None:
        self.socket.close(linger=0)


@pytest.fixture(scope="module")
def served_gaussian() -> Iterator[SimulatorProcess]:
    """The gaussian simulator serving in a subprocess for the whole module."""
    process = SimulatorProcess(simulator_argv("gaussian"))
    try:
        with ppx.RemoteModel(process.address, handshake_timeout=120, timeout=30) as model:
            assert len(model.run()) == 3
        yield process
    finally:
        process.cleanup()


@pytest.fixture(scope="module")
def peer(served_gaussian: SimulatorProcess) -> Iterator[Peer]:
    client = Peer(served_gaussian.address, served_gaussian)
    yield client
    client.close()


def expect_error_for_undecodable(data: bytes, reply: m.Message) -> None:
    """A buffer our decoder refuses must be refused by the server with an Error, not acted on."""
    try:
        decode(data)
    except PPXError:
        assert isinstance(reply, m.Error), f"{data!r} was answered with {reply!r}"
        assert reply.message


def between_runs(peer: Peer, data: bytes) -> None:
    """``data`` as a request of its own, after a handshake announcing every extension."""
    peer.serving()
    assert isinstance(peer.ask(HELLO), m.HandshakeResult)
    expect_error_for_undecodable(data, peer.ask(data))
    assert (died := peer.death()) is None, died
    assert isinstance(peer.ask(HELLO), m.HandshakeResult)  # still serving, whatever came before


def mid_run(peer: Peer, data: bytes) -> None:
    """``data`` in place of the engine's answer to the run's first draw."""
    peer.serving()
    assert isinstance(peer.ask(HELLO), m.HandshakeResult)
    assert isinstance(peer.ask(RUN), m.Sample)
    reply = peer.ask(data)
    assert (died := peer.death()) is None, died
    expect_error_for_undecodable(data, reply)
    assert isinstance(peer.ask(HELLO), m.HandshakeResult)  # the run is abandoned


def engine_still_runs(peer: Peer) -> None:
    """An engine runs the model to completion (on a restarted server if the fuzzing failed)."""
    peer.serving()
    with ppx.RemoteModel(peer.address, timeout=30) as model:
        traces = [model.run(observe={"obs0": 8.0, "obs1": 9.0}) for _ in range(3)]
    assert all(len(trace) == 3 for trace in traces)


@FAST
@given(data=buffers())
def test_every_request_between_runs_gets_a_reply(peer, data):
    between_runs(peer, data)


@FAST
@given(data=buffers())
def test_every_answer_mid_run_gets_a_reply(peer, data):
    mid_run(peer, data)


def test_the_engine_still_runs_the_model_after_the_fuzzing(peer):
    engine_still_runs(peer)


@pytest.mark.slow
@SLOW
@given(data=buffers())
def test_many_requests_between_runs_get_a_reply(peer, data):
    between_runs(peer, data)


@pytest.mark.slow
@SLOW
@given(data=buffers())
def test_many_answers_mid_run_get_a_reply(peer, data):
    mid_run(peer, data)


@pytest.mark.slow
def test_the_engine_still_runs_the_model_after_the_long_fuzzing(peer):
    engine_still_runs(peer)


def test_a_request_nobody_answers_fails_the_check(ipc_address):
    """The check is not vacuous: without a reply it fails, and the peer can ask again."""
    client = Peer(ipc_address, None, timeout_ms=100)
    try:
        for _ in range(2):
            with pytest.raises(AssertionError, match="no reply"):
                client.ask(HELLO)
    finally:
        client.close()
