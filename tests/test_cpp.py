"""The C++ client (protocol/cpp) and the C++ simulators (simulators/cpp), driven by our engine.

Real build (once per session), real subprocesses, real sockets. Skips only
where the C++ toolchain is missing, naming the package to install.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import arviz as az
import numpy as np
import pytest
import torch
import zmq

import ppx
from ppx.cpp import build_cpp_simulators, cpp_simulator, missing_toolchain
from ppx.protocol import decode, encode
from ppx.protocol import messages as m
from ppx.simulators import branching, gaussian, rejection

OBSERVE = {"obs0": 8.0, "obs1": 9.0}
EXACT_MEAN, EXACT_STD = gaussian.exact_posterior([8.0, 9.0])
CPP = Path(__file__).resolve().parent.parent / "protocol" / "cpp"


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    missing = missing_toolchain()
    if missing is not None:
        pytest.skip(f"C++ toolchain unavailable: {missing}")
    return build_cpp_simulators()


@pytest.fixture
def spawn(bin_dir):
    """``spawn("gaussian")``: a RemoteModel owning a C++ simulator, closed after the test."""
    models = []

    def start(name: str, *args: str) -> ppx.RemoteModel:
        models.append(ppx.RemoteModel.spawn(cpp_simulator(name, *args), retries=0, timeout=30))
        return models[-1]

    yield start
    for model in models:
        model.close()


class Peer:
    """A bare REQ socket speaking PPX message by message, as a hand-written engine."""

    def __init__(self, address: str) -> None:
        self.socket = zmq.Context.instance().socket(zmq.REQ)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(address)

    def ask(self, message: m.Message | bytes) -> m.Message:
        self.socket.send(message if isinstance(message, bytes) else encode(message))
        assert self.socket.poll(10_000), "the C++ server did not answer"
        return decode(self.socket.recv())

    def close(self) -> None:
        self.socket.close()


@contextlib.contextmanager
def served(bin_dir: Path, name: str, address: str) -> Iterator[tuple[subprocess.Popen, Peer]]:
    """The C++ program ``name`` serving at ``address``, and a Peer talking to it."""
    process = subprocess.Popen(
        [str(bin_dir / name), "--address", address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peer = Peer(address)
    try:
        yield process, peer
    finally:
        peer.close()
        if process.poll() is None:
            process.kill()
        process.communicate()


# --- posteriors -------------------------------------------------------------------------


@pytest.mark.slow
def test_gaussian_importance_sampling_matches_conjugate_posterior(spawn):
    model = spawn("gaussian")
    proposal = {"mu": torch.distributions.Normal(7.0, 1.5)}
    posterior = ppx.inference.importance_sampling(model, OBSERVE, 2000, proposal=proposal)
    assert posterior.ess > 500
    standard_error = EXACT_STD / math.sqrt(posterior.ess)
    assert abs(float(posterior.mean("mu")) - EXACT_MEAN) < 4 * standard_error
    assert float(posterior.std("mu")) == pytest.approx(EXACT_STD, rel=4 / math.sqrt(posterior.ess))
    exact_log_evidence = gaussian.log_evidence([8.0, 9.0])
    assert posterior.log_evidence == pytest.approx(exact_log_evidence, abs=4 / posterior.ess**0.5)


@pytest.mark.slow
def test_gaussian_rmh_matches_conjugate_posterior(spawn):
    posterior = ppx.inference.rmh(
        spawn("gaussian"), OBSERVE, 2000, proposal="random_walk", burn_in=200, progress=False
    )
    mus = posterior.values("mu")
    ess = float(az.ess(mus[None, :]))
    assert ess > 50
    assert abs(mus.mean() - EXACT_MEAN) < 4 * EXACT_STD / math.sqrt(ess)
    assert mus.std() == pytest.approx(EXACT_STD, rel=4 / math.sqrt(ess))


def test_branching_traces_equal_those_of_the_python_simulator(spawn):
    """Replaying a C++ trace's values in the Python model gives the same trace, draw by draw."""
    python = ppx.LocalModel(branching.model)
    traces = [spawn("branching").run(observe={"obs": 6.0}) for _ in range(60)]
    assert len({len(trace) for trace in traces}) > 2  # several trace structures
    for ours in traces:
        replay = ppx.ReplayController({d.address: d.value for d in ours})
        theirs = python.run(replay, observe={"obs": 6.0})
        assert [d.address for d in ours] == [d.address for d in theirs]
        assert [float(d.value) for d in ours] == [float(d.value) for d in theirs]
        assert float(ours.result) == float(theirs.result)
        obs = [trace.draws[-1] for trace in (ours, theirs)]  # the observe: same likelihood
        log_p = [float(d.distribution.log_prob(torch.as_tensor(d.value))) for d in obs]
        assert log_p[0] == pytest.approx(log_p[1], rel=1e-5)


def test_a_rejection_loop_is_marked_and_weighed_exactly(spawn):
    """``replace = true`` crosses the wire from C++; prior IS over the loop is exact."""
    torch.manual_seed(3)
    post = ppx.inference.importance_sampling(spawn("rejection"), {"obs": 1.0}, 1500)
    exact = rejection.exact_posterior(1.0)[1]
    estimate = float(np.sum(post.weights[post.values("c") == 1]))
    assert abs(estimate - exact) < 4 * math.sqrt(exact * (1 - exact) / post.ess)
    latents = spawn("rejection").run().controlled_latents()
    assert [d.replace for d in latents] == [False] + [True] * (len(latents) - 1)


@pytest.mark.slow
def test_branching_importance_sampling_matches_enumeration(spawn):
    observation = branching.DEFAULT_OBSERVATION
    exact = branching.exact_posterior(observation)
    posterior = ppx.inference.importance_sampling(spawn("branching"), {"obs": observation}, 4000)
    r = posterior.values("r")
    for value in range(8):
        estimate = float(np.sum(posterior.weights[r == value]))
        tolerance = 4 * math.sqrt(exact[value] * (1 - exact[value]) / posterior.ess) + 1e-3
        assert abs(estimate - exact[value]) < tolerance, (value, estimate, exact[value])


# --- what the engine sees -----------------------------------------------------------


def test_handshake_addresses_tags_and_values(spawn):
    model = spawn("gaussian")
    assert (model.name, model.peer_system) == ("gaussian", "ppx (C++)")
    assert model.capabilities >= {"error_report", "multivariate_normal"}
    trace = model.run()
    assert [d.address for d in trace] == ["mu__Normal__1", "obs0__Normal__1", "obs1__Normal__1"]
    assert float(trace.result) == float(trace["mu"])

    faulty = spawn("faulty")
    trace = faulty.run(observe={"mode": 0})
    addresses = [d.address for d in trace]
    assert addresses[:2] == ["x__Normal__1", "mode__Categorical(len_probs:4)__1"]
    assert re.fullmatch(r"faulty\.cpp:faulty:\d+__Uniform__1", addresses[2]), addresses[2]
    assert addresses[3] == "y__Normal__1" and float(trace["y"]) == 0.5  # the simulator's value
    assert float(trace.tags["twice_x"]) == 2 * float(trace["x"])
    assert trace.result.tolist() == [float(trace["x"])]


def test_multivariate_normal_reaches_an_engine_that_announced_it(spawn):
    trace = spawn("faulty").run(observe={"mode": 3})
    v = trace["v"]
    assert v.shape == (2,) and trace.result.tolist() == v.tolist()


def test_roundtrip_program_serves_its_draws(spawn):
    assert [d.address for d in spawn("roundtrip", "--draws", "5").run()] == [
        f"x__Normal__{i}" for i in range(1, 6)
    ]


# --- failures -----------------------------------------------------------------------------


def test_thrown_exception_reaches_engine_and_server_keeps_serving(spawn):
    model = spawn("faulty")
    with pytest.raises(ppx.SimulatorError) as info:
        model.run(observe={"mode": 1})
    error = info.value
    assert error.error_type == "std::runtime_error" and error.address == "mode"
    assert "detector geometry not loaded" in str(error) and "'faulty'" in str(error)
    assert [d.name for d in error.trace] == ["x", "mode"]
    assert len(model.run()) == 4  # the next run works


def test_invalid_parameters_are_reported_with_address_and_server_keeps_serving(spawn):
    model = spawn("faulty")
    for _ in range(2):
        with pytest.raises(ppx.SimulatorError) as info:
            model.run(observe={"mode": 2})
        error = info.value
        assert error.error_type == "InvalidDistribution" and error.address == "broken"
        assert isinstance(error, ppx.InvalidDistribution)  # so RMH rejects such a proposal
        assert "invalid Normal parameters at address 'broken' (mean=nan, stddev=1)" in str(error)
        assert len(model.run()) == 4


def test_pyprob_style_handshake_gets_a_1_0_0_answer_and_resets(bin_dir, ipc_address):
    """An engine without protocol_version (pyprob 1.0.0): no extensions, Reset on failures."""
    with served(bin_dir, "faulty", ipc_address) as (_, peer):
        hello = peer.ask(m.Handshake("pyprob"))
        assert hello == m.HandshakeResult("ppx (C++)", "faulty")  # no version, no capabilities

        def start(mode: int) -> m.Message:
            assert peer.ask(m.Run()).address == "x"
            assert peer.ask(m.SampleResult(np.array(0.25))).address == "mode"
            return peer.ask(m.SampleResult(np.array([float(mode)])))  # pyprob sends shape [1]

        assert isinstance(start(1), m.Reset)  # the exception
        assert isinstance(start(2), m.Reset)  # NaN parameters
        assert isinstance(start(3), m.Reset)  # MultivariateNormal is not for 1.0.0 peers
        uniform = start(0)
        assert isinstance(uniform, m.Sample) and uniform.name is None
        tag = peer.ask(m.SampleResult(np.array(0.5)))
        assert (tag.name, float(tag.value)) == ("twice_x", 0.5)
        observe = peer.ask(m.TagResult())
        assert (observe.name, float(observe.value)) == ("y", 0.5)
        assert float(observe.distribution.loc) == 0.75
        result = peer.ask(m.ObserveResult())
        assert isinstance(result, m.RunResult) and result.result.tolist() == [0.25]


def test_garbage_and_desync_get_error_replies_and_server_keeps_serving(bin_dir, ipc_address):
    with served(bin_dir, "gaussian", ipc_address) as (_, peer):
        for junk in (b"", b"\x01\x02", b"garbage garbage garbage", encode(m.Run())[:-3]):
            assert isinstance(peer.ask(junk), m.Reset)  # no handshake yet: 1.0.0 terms
        peer.ask(m.Handshake("test", "1.1.0", ("error_report",)))
        reply = peer.ask(b"\x00" * 3)
        assert isinstance(reply, m.Error) and reply.error_type == "ProtocolError"
        assert "empty" not in reply.message and reply.message
        assert isinstance(peer.ask(m.SampleResult(np.array(1.0))), m.Error)  # outside a run

        assert peer.ask(m.Run()).address == "mu"
        reply = peer.ask(b"garbage garbage garbage")  # mid-run
        assert (reply.error_type, reply.address) == ("ProtocolError", "mu")
        assert peer.ask(m.Run()).address == "mu"
        reply = peer.ask(m.TagResult())  # the wrong answer
        assert "expected SampleResult, got TagResult" in reply.message
        assert peer.ask(m.Run()).address == "mu"
        assert peer.ask(m.Run()).address == "mu"  # the engine started over
        assert peer.ask(m.SampleResult(np.array(2.0))).address == "obs0"
        assert isinstance(peer.ask(m.Reset()), m.Reset)  # the engine resynchronises
        with ppx.RemoteModel(ipc_address) as model:
            assert len(model.run()) == 3


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("mid_run", [False, True])
def test_signal_stops_server_cleanly(bin_dir, ipc_address, signum, mid_run):
    with served(bin_dir, "gaussian", ipc_address) as (process, peer):
        peer.ask(m.Handshake("test", "1.1.0", ()))
        if mid_run:
            assert peer.ask(m.Run()).address == "mu"
        path = ipc_address.removeprefix("ipc://")
        assert os.path.exists(path)
        process.send_signal(signum)
        assert process.wait(5) == 0
        assert not os.path.exists(path)
        assert "serving 'gaussian'" in process.stderr.read()


def test_refuses_to_bind_beyond_loopback(bin_dir):
    done = subprocess.run(
        [str(bin_dir / "gaussian"), "--address", "tcp://0.0.0.0:5999"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1 and "refusing to bind" in done.stderr


def test_pingpong_echoes_the_reply_size(bin_dir, ipc_address):
    process = subprocess.Popen([str(bin_dir / "pingpong"), ipc_address, "37"])
    socket = Peer(ipc_address).socket
    try:
        socket.send(b"q" * 100)
        assert socket.poll(10_000) and len(socket.recv()) == 37
        socket.send(b"")
        assert socket.poll(10_000) and socket.recv() == b""
        assert process.wait(5) == 0
    finally:
        socket.close()
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the header itself ------------------------------------------------------------------


def test_generated_header_is_up_to_date(tmp_path):
    """include/ppx/ppx_generated.h is what generate.sh makes from protocol/ppx.fbs now."""
    if subprocess.run(["which", "flatc"], capture_output=True).returncode != 0:
        pytest.skip("flatc unavailable (Debian/Ubuntu: apt-get install flatbuffers-compiler)")
    subprocess.run(["bash", str(CPP / "generate.sh"), str(tmp_path)], check=True)
    for name in ("ppx_generated.h", "generated_version.hpp"):
        assert (tmp_path / name).read_text() == (CPP / "include" / "ppx" / name).read_text(), (
            f"{name} is stale: run protocol/cpp/generate.sh"
        )


def test_flatbuffers_version_mismatch_is_explained(bin_dir, tmp_path):
    """Headers of another flatbuffers version: a clear message from the compiler and CMake."""
    fake = tmp_path / "include" / "flatbuffers"
    fake.mkdir(parents=True)
    (fake / "base.h").write_text(
        "#define FLATBUFFERS_VERSION_MAJOR 25\n#define FLATBUFFERS_VERSION_MINOR 12\n"
        "#define FLATBUFFERS_VERSION_REVISION 19\n"
    )
    (fake / "flatbuffers.h").write_text('#include "flatbuffers/base.h"\n')
    source = tmp_path / "probe.cpp"
    source.write_text("#include <ppx/wire.hpp>\n")
    compiled = subprocess.run(
        [
            "c++",
            "-std=c++17",
            "-fsyntax-only",
            f"-I{fake.parent}",
            f"-I{CPP / 'include'}",
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert compiled.returncode != 0
    assert "was generated by flatc 2.0.8" in compiled.stderr
    configured = subprocess.run(
        [
            "cmake",
            "-S",
            str(CPP),
            "-B",
            str(tmp_path / "build"),
            f"-DPPX_FLATBUFFERS_INCLUDE_DIR={fake.parent}",
        ],
        capture_output=True,
        text=True,
    )
    assert configured.returncode != 0
    assert "flatbuffers headers" in configured.stderr and "25.12.19" in configured.stderr


def test_cpp_simulator_names_unknown_programs():
    with pytest.raises(ValueError, match="gaussian"):
        cpp_simulator("nope")
