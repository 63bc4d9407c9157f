"""Many engines on one served simulator: whole runs, one at a time, each engine in turn."""

from __future__ import annotations

import contextlib
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import arviz as az
import numpy as np
import pytest
import torch
import zmq
from conftest import simulator_argv
from torch.distributions import Normal

import ppx
from ppx.protocol import decode, encode
from ppx.protocol import messages as m
from ppx.simulator.server import SimulatorServer
from ppx.simulators import gaussian

NEW_ENGINE = m.Handshake("raw engine", "1.1.0", ("error_report",))
OLD_ENGINE = m.Handshake("pyprob-like engine")  # PPX 1.0.0: no version, no extensions
OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = gaussian.exact_posterior([8.0, 9.0])

FIVE_DRAWS = """
import sys, torch, ppx
from torch.distributions import Normal
def simulator():
    return torch.stack([ppx.sample(Normal(0.0, 1.0), name=f"x{i}") for i in range(5)])
ppx.serve(simulator, sys.argv[sys.argv.index("--address") + 1], model_name="five-draws")
"""


def two_draws() -> torch.Tensor:
    a = ppx.sample(Normal(0.0, 1.0), name="a")
    b = ppx.sample(Normal(0.0, 1.0), name="b")
    return a + 10 * b


class RawEngine:
    """A bare REQ socket speaking PPX, as pyprob's engine does."""

    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def send(self, message: m.MessageBody) -> None:
        self.socket.send(encode(message))

    def receive(self, seconds: float = 10.0) -> m.MessageBody | None:
        """The reply, or None if none came within ``seconds``."""
        if not self.socket.poll(int(seconds * 1000)):
            return None
        return decode(self.socket.recv())

    def ask(self, message: m.MessageBody) -> m.MessageBody:
        self.send(message)
        reply = self.receive()
        assert reply is not None, f"no reply to {type(message).__name__}"
        return reply

    def finish(self, *values: float) -> m.MessageBody:
        """Answer the run's Samples with ``values``; the run's last message."""
        reply = None
        for value in values:
            reply = self.ask(m.SampleResult(np.array(value)))
        assert reply is not None
        return reply

    def close(self) -> None:
        self.socket.close(linger=0)


@pytest.fixture
def engines(ipc_address: str) -> Iterator[Callable[[], RawEngine]]:
    """``engines()`` connects one more raw engine to ``ipc_address``; all closed after."""
    made: list[RawEngine] = []

    def connect() -> RawEngine:
        made.append(RawEngine(ipc_address))
        return made[-1]

    yield connect
    for engine in made:
        engine.close()


@contextlib.contextmanager
def serving(fn: Callable[[], Any], address: str, **options: Any) -> Iterator[SimulatorServer]:
    """Serve ``fn`` from a thread with :class:`SimulatorServer` ``options``."""
    server = SimulatorServer(fn, address, "test", **options)
    stop = threading.Event()
    thread = threading.Thread(target=server.serve_forever, args=(stop,))
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(10)
        server.close()
        assert not thread.is_alive(), "server thread did not stop"


def assert_result(reply: m.MessageBody, expected: float) -> None:
    assert isinstance(reply, m.RunResult), reply
    assert float(np.asarray(reply.result)) == expected


# -- the server's turns -------------------------------------------------------------------
def test_a_second_engine_waits_for_the_run_in_progress(ipc_address, engines):
    with serving(two_draws, ipc_address):
        first, second = engines(), engines()
        assert isinstance(first.ask(NEW_ENGINE), m.HandshakeResult)
        assert isinstance(first.ask(m.Run()), m.Sample)
        assert isinstance(second.ask(NEW_ENGINE), m.HandshakeResult)  # answered mid-run
        second.send(m.Run())
        assert second.receive(0.3) is None  # waits for the first engine's run
        assert_result(first.finish(1.0, 2.0), 21.0)
        assert isinstance(second.receive(), m.Sample)
        assert_result(second.finish(3.0, 4.0), 43.0)


def test_an_abandoned_run_gives_its_turn_to_the_engine_waiting(ipc_address, engines):
    with serving(two_draws, ipc_address):
        first, second = engines(), engines()
        assert isinstance(first.ask(m.Run()), m.Sample)
        second.send(m.Run())
        first.send(m.Run())  # in place of the SampleResult: the first run is given up
        assert isinstance(second.receive(), m.Sample)
        assert first.receive(0.3) is None  # its new run waits behind the second engine's
        assert_result(second.finish(1.0, 2.0), 21.0)
        assert isinstance(first.receive(), m.Sample)
        assert_result(first.finish(5.0, 6.0), 65.0)


def test_a_reset_mid_run_ends_the_run_and_serves_the_next_engine(ipc_address, engines):
    with serving(two_draws, ipc_address):
        first, second = engines(), engines()
        assert isinstance(first.ask(m.Run()), m.Sample)
        second.send(m.Run())
        assert isinstance(first.ask(m.Reset()), m.Reset)
        assert isinstance(second.receive(), m.Sample)
        assert_result(second.finish(1.0, 2.0), 21.0)


def test_an_engine_that_dies_mid_run_is_waited_for_engine_timeout_only(ipc_address, engines):
    with serving(two_draws, ipc_address, engine_timeout=0.5):
        first, second = engines(), engines()
        assert isinstance(first.ask(m.Run()), m.Sample)
        first.close()  # the engine dies without a word
        started = time.monotonic()
        second.send(m.Run())
        assert isinstance(second.receive(), m.Sample)
        assert time.monotonic() - started < 5
        assert_result(second.finish(1.0, 2.0), 21.0)


def test_a_run_whose_engine_is_gone_ends_at_its_next_reply(ipc_address, engines):
    started = threading.Event()
    proceed = threading.Event()

    def slow_start() -> torch.Tensor:
        started.set()
        proceed.wait(10)
        return two_draws()

    with serving(slow_start, ipc_address, engine_timeout=None):
        first, second = engines(), engines()
        first.send(m.Run())
        assert started.wait(10)
        first.close()  # gone before the first Sample could reach it
        second.send(m.Run())
        time.sleep(0.3)
        proceed.set()
        assert isinstance(second.receive(), m.Sample)  # no engine_timeout: the send failed
        assert_result(second.finish(1.0, 2.0), 21.0)


def test_runs_beyond_the_queue_bound_are_refused_with_a_clear_error(ipc_address, engines):
    with serving(two_draws, ipc_address, max_waiting=1):
        first, second, third = engines(), engines(), engines()
        assert isinstance(third.ask(NEW_ENGINE), m.HandshakeResult)
        assert isinstance(first.ask(m.Run()), m.Sample)
        second.send(m.Run())
        refused = third.ask(m.Run())
        assert isinstance(refused, m.Error) and refused.error_type == "ServerBusy"
        assert "1 runs of other engines wait already" in refused.message
        assert ipc_address in refused.message
        assert_result(first.finish(1.0, 2.0), 21.0)
        assert_result((second.receive(), second.finish(3.0, 4.0))[1], 43.0)


def test_each_engine_keeps_what_it_negotiated(ipc_address, engines):
    """A pyprob-like engine and a PPX engine on one server: each is answered in its terms."""
    with serving(two_draws, ipc_address):
        old, new = engines(), engines()
        assert old.ask(OLD_ENGINE).protocol_version is None
        assert new.ask(NEW_ENGINE).protocol_version is not None
        assert isinstance(old.ask(m.TagResult()), m.Reset)  # no error_report: a Reset
        error = new.ask(m.TagResult())
        assert isinstance(error, m.Error) and "has no run in progress" in error.message


def test_requests_are_answered_through_their_routing_envelope(ipc_address):
    """A proxy's routing frames come back with the reply; a message without one is dropped."""
    dealer = zmq.Context.instance().socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(ipc_address)
    try:
        with serving(two_draws, ipc_address):
            dealer.send(encode(NEW_ENGINE))  # no delimiter: not a REQ envelope
            assert not dealer.poll(300)
            dealer.send_multipart([b"hop", b"", encode(NEW_ENGINE)])
            assert dealer.poll(10_000)
            hop, delimiter, reply = dealer.recv_multipart()
            assert (hop, delimiter) == (b"hop", b"")
            assert isinstance(decode(reply), m.HandshakeResult)
    finally:
        dealer.close()


# -- engines of PPX on one server -----------------------------------------------------------
class Fixed:
    """Engine ``k`` sets draw ``x{i}`` to ``100 k + i``: its traces must hold just those."""

    def __init__(self, k: int) -> None:
        self.k = k

    def __call__(self, address: str, name: str | None, distribution: object) -> torch.Tensor:
        assert name is not None
        return torch.tensor(100.0 * self.k + int(name[1:]))


def test_engines_in_threads_each_get_their_own_complete_runs(tmp_path):
    script = tmp_path / "five_draws.py"
    script.write_text(FIVE_DRAWS)
    failures: list[str] = []
    with ppx.RemoteModel.spawn([sys.executable, str(script)]) as owner:
        models = [owner] + [ppx.RemoteModel(owner.address) for _ in range(3)]

        def engine(k: int) -> None:
            try:
                for _ in range(20):
                    trace = models[k].run(controller=Fixed(k))
                    expected = [100.0 * k + i for i in range(5)]
                    assert trace.result.tolist() == expected, (k, trace.result)
                    assert [float(d.value) for d in trace] == expected
            except Exception as error:  # noqa: BLE001 - reported by the main thread
                failures.append(f"engine {k}: {error!r}")

        threads = [threading.Thread(target=engine, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for model in models[1:]:
            model.close()
    assert not failures, failures


@pytest.mark.slow
def test_rmh_chains_on_dask_workers_share_one_served_simulator(ipc_address):
    """The issue's case: ``rmh(RemoteModel(address), chains=4)`` against one ``ppx serve``."""
    server = subprocess.Popen(simulator_argv("gaussian", "--address", ipc_address))
    try:
        with ppx.RemoteModel(ipc_address, handshake_timeout=120) as model:
            posterior = ppx.inference.rmh(
                model, OBSERVE, 2000, chains=4, proposal="random_walk", n_workers=2, seed=3
            )
    finally:
        server.terminate()
        server.wait(30)
    data = posterior.to_arviz(["mu"])
    ess, rhat = float(az.ess(data)["mu"]), float(az.rhat(data)["mu"])
    mus = posterior.values("mu")
    mean, std = mus.mean(), mus.std()
    print(f"rmh x4, one server: mean {mean:.4f} (exact {EXACT_MEAN:.4f}), std {std:.4f} "
          f"(exact {EXACT_STD:.4f}), ess {ess:.0f}, r-hat {rhat:.4f}")  # fmt: skip
    assert len(mus) == 8000 and posterior.num_chains == 4 and rhat < 1.01
    assert abs(mean - EXACT_MEAN) < 4 * EXACT_STD / math.sqrt(ess)
    assert std == pytest.approx(EXACT_STD, rel=4 / math.sqrt(ess))
