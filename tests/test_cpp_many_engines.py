"""Several engines sharing one served C++ simulator (a ROUTER socket, one run at a time).

Real sockets and a real C++ server process: hand-driven REQ peers interleave
their messages step by step; engines in threads interleave whole runs; RMH
chains on Dask workers all drive the same server.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import torch
import zmq

import ppx
from ppx.cpp import build_cpp_simulators, missing_toolchain
from ppx.protocol import CAPABILITIES, PROTOCOL_VERSION, decode, encode
from ppx.protocol import messages as m
from ppx.simulators import gaussian

torch.set_num_threads(1)

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = gaussian.exact_posterior([8.0, 9.0])
LIKELIHOOD = math.sqrt(2.0)


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")
    return build_cpp_simulators(targets=["gaussian"])


@contextlib.contextmanager
def gaussian_server(bin_dir: Path, address: str, **env: str) -> Iterator[subprocess.Popen]:
    """The C++ gaussian serving at ``address`` (with extra environment ``env``)."""
    process = subprocess.Popen(
        [str(bin_dir / "gaussian"), "--address", address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        yield process
    finally:
        if process.returncode is None:  # not yet waited for by the test
            process.kill()
            process.communicate()


class Peer:
    """One engine, driven message by message: a REQ socket, or a DEALER speaking as one.

    A DEALER may send twice before it reads; :meth:`queue_run` uses that.
    """

    def __init__(self, address: str, routing_id: bytes = b"", kind: int = zmq.REQ) -> None:
        self.socket = zmq.Context.instance().socket(kind)
        self.socket.setsockopt(zmq.LINGER, 0)
        if routing_id:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id)
        self.socket.connect(address)
        self.envelope = [b""] if kind == zmq.DEALER else []  # REQ's empty delimiter frame

    def send(self, message: m.Message | bytes) -> None:
        data = message if isinstance(message, bytes) else encode(message)
        self.socket.send_multipart([*self.envelope, data])

    def receive(self) -> m.Message:
        assert self.socket.poll(10_000), "the C++ server did not answer"
        return decode(self.socket.recv_multipart()[-1])

    def ask(self, message: m.Message | bytes) -> m.Message:
        self.send(message)
        return self.receive()

    def queue_run(self) -> None:
        """Ask for a run while another engine's is served: once the Handshake sent
        behind it is answered (same pipe, in order), the Run surely waits in the queue."""
        assert self.envelope, "only a DEALER peer can send twice"
        self.send(m.Run())
        assert isinstance(
            self.ask(m.Handshake("dealer", PROTOCOL_VERSION, CAPABILITIES)), m.HandshakeResult
        )

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def peers(ipc_address: str) -> Iterator[list[Peer]]:
    """Two REQ peers and a DEALER peer."""
    made = [Peer(ipc_address), Peer(ipc_address), Peer(ipc_address, kind=zmq.DEALER)]
    yield made
    for peer in made:
        peer.close()


def finish_run(peer: Peer, mu: float) -> m.RunResult:
    """Answer a gaussian run's three draws (mu, then the two observes)."""
    assert isinstance(peer.ask(m.SampleResult(np.array(mu))), m.Observe)
    assert isinstance(peer.ask(m.ObserveResult()), m.Observe)
    result = peer.ask(m.ObserveResult())
    assert isinstance(result, m.RunResult)
    return result


def test_a_run_asked_mid_run_waits_for_the_run_in_progress(bin_dir, ipc_address, peers):
    a, b, _ = peers
    with gaussian_server(bin_dir, ipc_address):
        a.ask(m.Handshake("a", PROTOCOL_VERSION, CAPABILITIES))
        assert a.ask(m.Run()).address == "mu"
        # B shakes hands mid-run and is answered at once; its Run waits its turn.
        assert isinstance(
            b.ask(m.Handshake("b", PROTOCOL_VERSION, CAPABILITIES)), m.HandshakeResult
        )
        b.send(m.Run())
        assert float(finish_run(a, 1.5).result) == 1.5  # A's run went on, undisturbed
        assert b.receive().address == "mu"  # then B's run started
        a.send(m.Run())  # and A's next one waits for B's
        assert float(finish_run(b, -2.0).result) == -2.0
        assert a.receive().address == "mu"
        assert float(finish_run(a, 3.0).result) == 3.0


def test_an_engine_that_starts_over_queues_behind_those_waiting(bin_dir, ipc_address, peers):
    a, _, b = peers
    with gaussian_server(bin_dir, ipc_address):
        assert a.ask(m.Run()).address == "mu"
        b.queue_run()  # waits for A's run
        a.send(m.Run())  # A gives up on its run and asks for a new one: B's turn first
        assert b.receive().address == "mu"
        assert float(finish_run(b, 4.0).result) == 4.0
        assert a.receive().address == "mu"
        assert float(finish_run(a, 5.0).result) == 5.0


def test_each_engine_keeps_the_terms_of_its_own_handshake(bin_dir, ipc_address, peers):
    modern, pyprob, _ = peers
    with gaussian_server(bin_dir, ipc_address):
        modern.ask(m.Handshake("modern", PROTOCOL_VERSION, ("error_report",)))
        pyprob.ask(m.Handshake("pyprob"))  # PPX 1.0.0: failures come as a Reset
        assert isinstance(modern.ask(b"garbage garbage"), m.Error)
        assert isinstance(pyprob.ask(b"garbage garbage"), m.Reset)
        assert modern.ask(m.Run()).address == "mu"
        assert isinstance(pyprob.ask(m.TagResult()), m.Reset)  # outside a run: answered at once
        reply = modern.ask(m.TagResult())  # inside its run: the wrong answer
        assert isinstance(reply, m.Error) and "expected SampleResult" in reply.message


def test_an_engine_silent_mid_run_is_given_up_when_others_wait(bin_dir, ipc_address, peers):
    gone, waiting, _ = peers
    with gaussian_server(bin_dir, ipc_address, PPX_ENGINE_TIMEOUT="0.5") as process:
        gone.ask(m.Handshake("gone", PROTOCOL_VERSION, CAPABILITIES))
        assert gone.ask(m.Run()).address == "mu"  # ... and never answers
        waiting.ask(m.Handshake("waiting", PROTOCOL_VERSION, CAPABILITIES))
        assert waiting.ask(m.Run()).address == "mu"
        assert float(finish_run(waiting, 0.5).result) == 0.5
        reply = gone.ask(m.SampleResult(np.array(1.0)))  # too late: that run is over
        assert isinstance(reply, m.Error) and "outside a run" in reply.message
        process.terminate()
        assert "stayed silent mid-run while others waited" in process.communicate(timeout=10)[1]


def test_a_new_socket_of_an_engine_takes_over_at_once(bin_dir, ipc_address):
    """A PPX engine that gave up on a reply asks again from a new socket (a new routing id
    of the same engine): its old run ends at once, and its handshake terms carry over."""
    engine = b"ppx" + os.urandom(8)
    old, new = (Peer(ipc_address, engine + n.to_bytes(4, "big")) for n in (0, 1))
    other = Peer(ipc_address, kind=zmq.DEALER)
    try:
        with gaussian_server(bin_dir, ipc_address, PPX_ENGINE_TIMEOUT="600"):
            old.ask(m.Handshake("engine", PROTOCOL_VERSION, ("error_report",)))
            assert old.ask(m.Run()).address == "mu"
            other.queue_run()  # waits for the engine's run
            new.send(m.Run())  # ends that run at once, and waits its turn
            assert other.receive().address == "mu"
            assert float(finish_run(other, 3.0).result) == 3.0
            assert new.receive().address == "mu"
            assert float(finish_run(new, 2.0).result) == 2.0
            assert isinstance(new.ask(b"garbage garbage"), m.Error)  # not a 1.0.0 Reset
    finally:
        for peer in (old, new, other):
            peer.close()


def test_engines_in_threads_interleave_runs_and_get_their_own_traces(bin_dir, ipc_address):
    """Four RemoteModels run at once; each trace has the values its engine chose."""
    runs = 25
    failures: list[BaseException] = []

    def engine(k: int) -> None:
        try:
            with ppx.RemoteModel(ipc_address) as model:
                for i in range(runs):
                    mu = 10.0 * k + i / 10
                    controller = ppx.ReplayController({"mu": torch.tensor(mu)})
                    trace = model.run(controller, observe={"obs0": k, "obs1": -k})
                    assert [d.name for d in trace] == ["mu", "obs0", "obs1"]
                    assert float(trace["mu"]) == float(trace.result) == pytest.approx(mu)
                    expected = torch.distributions.Normal(mu, LIKELIHOOD).log_prob(
                        torch.tensor([float(k), float(-k)])
                    )
                    assert trace.log_likelihood == pytest.approx(float(expected.sum()), rel=1e-6)
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    with gaussian_server(bin_dir, ipc_address):
        threads = [threading.Thread(target=engine, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures[0]


@pytest.mark.slow
def test_rmh_chains_on_dask_workers_share_one_served_simulator(bin_dir, ipc_address):
    with gaussian_server(bin_dir, ipc_address), ppx.RemoteModel(ipc_address) as model:
        posterior = ppx.inference.rmh(model, OBSERVE, 2000, chains=4, seed=7, progress=False)
    assert len(posterior) == 8000 and posterior.num_chains == 4
    ess = float(az.ess(posterior.to_arviz(["mu"]))["mu"])
    mus = posterior.values("mu")
    assert abs(mus.mean() - EXACT_MEAN) < 4 * EXACT_STD / math.sqrt(ess)
    assert mus.std() == pytest.approx(EXACT_STD, rel=4 / math.sqrt(ess))
    assert float(az.rhat(posterior.to_arviz(["mu"]))["mu"]) < 1.02
