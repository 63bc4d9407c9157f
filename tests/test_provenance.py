"""Provenance records in every file PPX writes, read back by ``ppx.provenance.read`` and the CLI.

Each kind of file is written small through the public API: importance sampling
and RMH posteriors, a trace dataset (and ``ppx prior --out``), an inference
network and its checkpoint, a simulation store and an sbi posterior, an
ensemble store and a set estimator. Each test checks the seed, the simulator
and the versions recorded, and that a store resumed by a later job keeps its
first record and lists the later one.
"""

from __future__ import annotations

import json
import pickle
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib.metadata import version
from pathlib import Path

import h5py
import pytest
import torch
from torch.distributions import Independent, Normal, Poisson

import ppx
from ppx.engine.model_spec import ModelSpec
from ppx.inference import Empirical, importance_sampling, rmh
from ppx.inference.ic import InferenceNetwork, NetworkConfig, generate_dataset, load_network
from ppx.protocol import PROTOCOL_VERSION
from ppx.provenance import Provenance, ProvenanceError, collect, describe_simulator, read
from ppx.simulators import gaussian

SMALL = NetworkConfig(observation_size=8, address_size=4, kind_size=4, value_size=4, hidden_size=8)
OBSERVED = {"obs0": 8.0, "obs1": 9.0}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def gaussian_model() -> ppx.LocalModel:
    return ppx.LocalModel(gaussian.model, name="gaussian")


def gaussian_2d() -> None:
    """``theta ~ N(0, I_2)``, ``x ~ N(theta, 0.5^2 I_2)``."""
    theta = ppx.sample(Independent(Normal(torch.zeros(2), 1.0), 1), name="theta")
    ppx.sample(Independent(Normal(theta, 0.5), 1), name="x")


def hierarchical() -> None:
    """``mu``, then a Poisson number of events ``x ~ N(N(mu, 0.5), 1)``, in scopes."""
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    for i in range(1 + int(ppx.sample(Poisson(4.0), name="num_events"))):
        with ppx.scope(f"event{i}"):
            ppx.observe(Normal(ppx.sample(Normal(mu, 0.5), name="z"), 1.0), name="x")


def check_this_process(record: Provenance) -> None:
    """The versions, command and host are those of this process."""
    assert record.ppx_version == ppx.__version__
    assert record.protocol_version == PROTOCOL_VERSION
    assert record.command == sys.argv
    assert record.libraries["torch"] == version("torch")
    assert record.libraries["h5py"] == version("h5py")
    assert record.libraries["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "libzmq" in record.libraries and record.created.endswith("+00:00")


def check_function(record: Provenance, name: str, fn: Callable[[], object]) -> None:
    assert record.simulator["name"] == name
    assert record.simulator.get("function") == f"{fn.__module__}:{fn.__qualname__}"


def ppx_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``ppx ARGS`` in this process; (exit code, stdout, stderr)."""
    from ppx.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


# -- posteriors ------------------------------------------------------------------------------
def test_importance_sampling_posterior_records_seed_simulator_and_versions(tmp_path: Path):
    posterior = importance_sampling(gaussian_model(), OBSERVED, 20, seed=4, progress=False)
    posterior.save(tmp_path / "post.h5")
    record = read(tmp_path / "post.h5")
    assert record.seed == 4 and record.appends == ()
    check_function(record, "gaussian", gaussian.model)
    check_this_process(record)
    assert Empirical.load(tmp_path / "post.h5").provenance == record


def test_posterior_of_a_connected_simulator_records_its_address(
    serve_in_thread: Callable[..., AbstractContextManager[str]], tmp_path: Path
):
    with serve_in_thread(gaussian.model, "served_gaussian") as address:
        with ppx.RemoteModel(address) as model:
            posterior = importance_sampling(model, OBSERVED, 5, seed=8, progress=False)
    posterior.save(tmp_path / "post.h5")
    record = read(tmp_path / "post.h5")
    assert record.seed == 8
    assert record.simulator == {"name": "served_gaussian", "address": address}


def test_rmh_output_file_records_the_chain_seed(tmp_path: Path):
    out = tmp_path / "chains.h5"
    posterior = rmh(gaussian_model(), OBSERVED, 20, burn_in=10, seed=5, out=out, progress=False)
    record = read(out)
    assert record.seed == 5 and posterior.provenance == record
    check_function(record, "gaussian", gaussian.model)
    check_this_process(record)


def test_a_posterior_without_a_known_origin_still_records_versions(tmp_path: Path):
    Empirical([{"mu": 1.0}, {"mu": 2.0}]).save(tmp_path / "bare.h5")
    record = read(tmp_path / "bare.h5")
    assert record.seed is None and record.simulator == {}
    check_this_process(record)


# -- trace datasets and inference networks -----------------------------------------------------
@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trace dataset of 40 traces, extended to 60 by a second job (parts merged in shards)."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("traces")
    options = dict(seed=7, chunk_size=10, shard_size=20, progress=False)
    generate_dataset(gaussian_model(), folder, 40, ["obs0", "obs1"], **options)
    generate_dataset(gaussian_model(), folder, 60, ["obs0", "obs1"], **options)
    return folder


def test_trace_dataset_keeps_the_first_job_and_lists_the_one_that_extended_it(dataset: Path):
    record = read(dataset)
    assert record.seed == 7
    check_function(record, "gaussian", gaussian.model)
    check_this_process(record)
    assert len(record.appends) == 1  # the second job; its parts' identical records count once
    later = record.appends[0]
    assert later.seed == 7 and later.created > record.created and later.appends == ()
    first_part = sorted(dataset.glob("part-*.h5"))[0]
    assert read(first_part).appends == ()  # a shard of the first job alone


def test_network_trained_on_a_dataset_records_its_seed_and_the_dataset(
    dataset: Path, tmp_path: Path
):
    checkpoint = tmp_path / "train.ckpt"
    net = InferenceNetwork.fit(
        dataset, batch_size=16, valid_size=8, config=SMALL, seed=2, checkpoint=checkpoint,
        progress=False,
    )  # fmt: skip
    net.save(tmp_path / "net.pt")
    record = read(tmp_path / "net.pt")
    assert record.seed == 2
    check_function(record, "gaussian", gaussian.model)  # what the dataset's record says
    assert record.simulator.get("data") == str(dataset.resolve())
    check_this_process(record)
    assert read(checkpoint) == record
    assert load_network(tmp_path / "net.pt").provenance == record


def test_network_trained_online_records_the_model(tmp_path: Path):
    model = gaussian_model()
    options = dict(num_traces=64, batch_size=32, valid_size=8, config=SMALL, progress=False)
    InferenceNetwork.fit(model, ["obs0", "obs1"], seed=9, **options).save(tmp_path / "n.pt")
    record = read(tmp_path / "n.pt")
    assert record.seed == 9
    check_function(record, "gaussian", gaussian.model)


# -- neural SBI ------------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Maximum number of epochs")  # one epoch is all it needs here
def test_simulation_store_and_sbi_posterior(tmp_path: Path):
    from ppx.inference import sbi

    store = tmp_path / "sims.h5"
    model = ppx.LocalModel(gaussian_2d, name="g2")
    sbi.simulate(model, num_simulations=60, store=store, seed=1, progress=False)
    sbi.simulate(model, num_simulations=100, store=store, seed=1, progress=False)
    record = read(store)
    assert record.seed == 1
    check_function(record, "g2", gaussian_2d)
    check_this_process(record)
    assert [later.seed for later in record.appends] == [1]  # the job that resumed it
    posterior = sbi.train(store, seed=3, max_num_epochs=1, training_batch_size=50)
    posterior.save(tmp_path / "posterior.pt")
    trained = read(tmp_path / "posterior.pt")
    assert trained.seed == 3
    check_function(trained, "g2", gaussian_2d)
    assert trained.simulator.get("data") == str(store.resolve())
    assert sbi.load_posterior(tmp_path / "posterior.pt").provenance == trained


# -- set SBI ---------------------------------------------------------------------------------
def test_ensemble_store_and_set_estimator(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from ppx.inference.sets import simulate_ensembles
    from ppx.inference.sets.persist import load_estimator

    store = tmp_path / "sets.h5"
    model = ppx.LocalModel(hierarchical, name="hier")
    simulate_ensembles(model, ["mu"], ["x"], 12, store=store, seed=2, progress=False)
    record = read(store)
    assert record.seed == 2 and record.appends == ()
    check_function(record, "hier", hierarchical)
    check_this_process(record)
    train = ["sets", "train", "--store", str(store), "--steps", "2", "--batch-size", "8"]
    code, _, err = ppx_in_process([*train, "--seed", "6", "--out", str(tmp_path / "e.pt")], capsys)
    assert code == 0, err
    trained = read(tmp_path / "e.pt")
    assert trained.seed == 6
    check_function(trained, "hier", hierarchical)
    assert trained.simulator.get("data") == str(store.resolve())
    assert load_estimator(tmp_path / "e.pt").provenance == trained


# -- describing simulators -------------------------------------------------------------------
def test_model_specs_describe_their_simulator_without_starting_it():
    argv = [sys.executable, "-m", "ppx.simulators.gaussian"]
    assert describe_simulator(ModelSpec("spawn", argv)) == {"argv": argv}
    address = "ipc:///tmp/nowhere"
    assert describe_simulator(ModelSpec("connect", address)) == {"address": address}
    local = describe_simulator(ModelSpec.local(gaussian.model, "g"))
    assert local == {
        "name": "g",
        "function": f"ppx.simulators.gaussian:{gaussian.model.__qualname__}",
    }
    assert describe_simulator("tau") == {"name": "tau"}


# -- the command -----------------------------------------------------------------------------
def test_ppx_prior_out_records_the_spawned_simulator_and_ppx_provenance_prints_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "prior"
    args = ["prior", "--simulator", "gaussian", "-n", "5", "--out", str(out), "--seed", "3"]
    code, _, err = ppx_in_process(args, capsys)
    assert code == 0, err
    record = read(out)
    assert record.seed == 3 and record.simulator["name"] == "gaussian"
    argv = record.simulator.get("argv")
    assert argv is not None and "ppx.simulators.gaussian" in " ".join(argv)
    code, printed, err = ppx_in_process(["provenance", str(out)], capsys)
    assert code == 0, err
    lines = {line.strip("│ ").split("│")[0].strip(): line for line in printed.splitlines()}
    assert "3" in lines["seed"] and "gaussian" in lines["simulator"]
    assert PROTOCOL_VERSION in lines["protocol"] and version("torch") in lines["torch"]
    code, printed, err = ppx_in_process(["provenance", str(out), "--json"], capsys)
    assert code == 0, err
    assert Provenance.from_dict(json.loads(printed), "stdout") == record


def test_a_store_with_appends_prints_each_later_job(tmp_path: Path, capsys):
    first, later = collect(seed=1, simulator="first"), collect(seed=2, simulator="later")
    Empirical([{"mu": 1.0}]).save(tmp_path / "p.h5", provenance=first.appended(later))
    code, printed, err = ppx_in_process(["provenance", str(tmp_path / "p.h5")], capsys)
    assert code == 0, err
    assert "appended (1)" in printed and "seed 2" in printed and "first" in printed


def write_bare_hdf5(path: Path) -> None:
    with h5py.File(path, "w") as file:
        file["x"] = [1.0]


class RunsCode:
    """Unpickling this writes the file ``marker``: reading a record must not."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_reading_a_torch_file_runs_none_of_its_code(tmp_path: Path):
    marker = tmp_path / "ran"
    contents = {"payload": RunsCode(marker), "ppx_provenance": collect(seed=5).to_dict()}
    torch.save(contents, tmp_path / "evil.pt")
    with pytest.raises(pickle.UnpicklingError):  # torch's safe load refuses it too
        torch.load(tmp_path / "evil.pt", weights_only=True)
    assert read(tmp_path / "evil.pt").seed == 5
    assert not marker.exists()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (None, "no such file or folder"),
        (lambda p: p.write_text("plain text"), "is not a file PPX writes"),
        (write_bare_hdf5, "holds no PPX provenance record"),
        (lambda p: torch.save({"state": torch.zeros(2)}, p), "holds no PPX provenance record"),
        (lambda p: p.mkdir(), "this folder holds no PPX provenance record"),
    ],
    ids=["missing", "text", "hdf5-without-record", "torch-without-record", "empty-folder"],
)
def test_files_without_a_record_are_one_clear_line_and_exit_2(make, message, tmp_path, capsys):
    path = tmp_path / "file"
    if make is not None:
        make(path)
    with pytest.raises((FileNotFoundError, ProvenanceError), match=message):
        read(path)
    code, printed, err = ppx_in_process(["provenance", str(path)], capsys)
    assert code == 2 and printed == ""
    assert len(err.strip().splitlines()) == 1 and message in err and str(path) in err
