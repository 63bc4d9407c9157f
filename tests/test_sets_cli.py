"""``ppx sets simulate | train | query`` end to end, estimators saved and loaded, bad input.

The program is the hierarchical Gaussian (``mu ~ N(0, 1)``; per event
``z ~ N(mu, 0.5^2)``, ``x ~ N(z, 1)``), written to a file in a temporary folder
and served over PPX by ``--simulator hier_prog:hierarchical``. Commands run in
this process (no new interpreter a command), as in ``test_cli.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ppx
from ppx.inference.sets import simulate_ensembles
from ppx.inference.sets.persist import (
    EstimatorConfig,
    StoreSimulator,
    load_estimator,
    save_estimator,
)

PROGRAM = '''
"""mu, then num_events events in scopes event0, event1, ..."""
import ppx
from torch.distributions import Normal, Poisson


def hierarchical() -> None:
    mu = ppx.sample(Normal(0.0, 1.0), name="mu")
    for i in range(int(ppx.sample(Poisson(5.0), name="num_events"))):
        with ppx.scope(f"event{i}"):
            z = ppx.sample(Normal(mu, 0.5), name="z")
            ppx.observe(Normal(z, 1.0), name="x")
'''


@pytest.fixture
def program_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary working folder holding ``hier_prog.py``, importable, made current."""
    (tmp_path / "hier_prog.py").write_text(PROGRAM)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("hier_prog", None)


def ppx_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``ppx ARGS`` in this process; (exit code, stdout, stderr)."""
    from ppx.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


def flat(text: str) -> str:
    return " ".join(text.split())


def test_simulate_train_query(program_folder: Path, capsys: pytest.CaptureFixture[str]):
    torch.set_num_threads(1)
    args = ["sets", "simulate", "-s", "hier_prog:hierarchical", "--global", "mu", "--data", "x"]
    code, out, err = ppx_in_process(
        [*args, "--sets", "60", "--n", "2:12", "--store", "s.h5"], capsys
    )
    assert code == 0, err
    assert "s.h5: 60 sets of hierarchical (theta 1-d ['mu'], events 1-d, N 2..12" in flat(out)
    train = ["sets", "train", "--store", "s.h5", "--steps", "30", "--batch-size", "32"]
    code, out, err = ppx_in_process([*train, "--out", "e.pt"], capsys)
    assert code == 0, err
    assert "SetNPE (deepset) of 'hierarchical' trained on 60 sets" in flat(out)
    assert "(N 2..12); saved to e.pt" in flat(out)
    np.savetxt(program_folder / "ev.csv", np.linspace(-1, 2, 7)[:, None], delimiter=",")
    query = ["sets", "query", "--estimator", "e.pt", "--events", "ev.csv", "-n", "500"]
    code, out, err = ppx_in_process([*query, "--plot", "p.png", "--out", "d.npy"], capsys)
    assert code == 0, err
    assert "SetNPE (deepset) of 'hierarchical': 7 events, 500 draws" in flat(out)
    assert "68% interval" in out and "95% interval" in out and "mu" in out
    assert (program_folder / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert np.load(program_folder / "d.npy").shape == (500, 1)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a store (N 2..12), a tiny NPE saved from it, and sets to query."""
    from torch.distributions import Normal, Poisson

    def hierarchical() -> None:
        mu = ppx.sample(Normal(0.0, 1.0), name="mu")
        for i in range(int(ppx.sample(Poisson(5.0), name="num_events"))):
            with ppx.scope(f"event{i}"):
                ppx.observe(Normal(ppx.sample(Normal(mu, 0.5), name="z"), 1.0), name="x")

    folder = tmp_path_factory.mktemp("sets")
    model = ppx.LocalModel(hierarchical, name="hier")
    store = folder / "s.h5"
    sets = simulate_ensembles(model, ["mu"], ["x"], 40, n=(2, 12), store=store, progress=False)
    config = EstimatorConfig("npe", 1)
    npe = config.build().fit(StoreSimulator(sets), n_range=(2, 12), steps=5, progress=False)
    save_estimator(npe, config, folder / "e.pt", {"simulator": "hier"})
    np.save(folder / "ok.npy", np.zeros((5, 1), np.float32))
    np.save(folder / "wide.npy", np.zeros((5, 2), np.float32))
    np.save(folder / "empty.npy", np.zeros((0, 1), np.float32))
    np.save(folder / "large.npy", np.zeros((50, 1), np.float32))
    (folder / "junk.h5").write_text("not HDF5")
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "-s", "nope", "--store", "x.h5"], "unknown simulator 'nope'"),
        (["simulate", "-s", "gaussian", "--store", "x.h5", "--n", "0:5"], "1 <= LO <= HI"),
        (["simulate", "-s", "gaussian", "--store", "x.h5", "--mode", "x"], "one_run or per_event"),
        (
            ["simulate", "-s", "gaussian", "--store", "x.h5", "--mode", "per_event"],
            "per_event needs the number of events",
        ),
        (["train", "--store", "missing.h5"], "does not exist"),
        (["train", "--store", "{f}/junk.h5"], "junk.h5 is not a PPX ensemble store"),
        (["train", "--store", "{f}/s.h5", "--method", "nope"], "one of ('npe', 'pairs', 'summed')"),
        (["train", "--store", "{f}/s.h5", "--network", "cnn", "--steps", "1"], "network must be"),
        (["train", "--store", "{f}/s.h5", "--n-range", "1:99"], "largest set has 12 events"),
        (["query", "--estimator", "{f}/s.h5", "--events", "{f}/ok.npy"], "not a PPX set estimator"),
        (["query", "--estimator", "{f}/e.pt", "--events", "{f}/wide.npy"], "(N, event_dim=1)"),
        (["query", "--estimator", "{f}/e.pt", "--events", "{f}/empty.npy"], "the set is empty"),
        (
            ["query", "--estimator", "{f}/e.pt", "--events", "{f}/large.npy"],
            "a set of 50 events is outside the sizes this estimator was trained on, 2..12",
        ),
        (["query", "--estimator", "{f}/e.pt", "--events", "{f}/none.npy"], "does not exist"),
    ],
    ids=[
        "unknown-simulator", "bad-n", "bad-mode", "per-event-without-n", "missing-store",
        "not-a-store", "unknown-method", "unknown-network", "n-beyond-store", "not-an-estimator",
        "wrong-event-shape", "empty-set", "n-beyond-trained", "missing-events",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_code_2(trained, args, message, capsys, monkeypatch):
    monkeypatch.chdir(trained)
    args = ["sets", *(a.replace("{f}", str(trained)) for a in args)]
    code, out, err = ppx_in_process(args, capsys)
    assert code == 2, out + err
    assert message in flat(err), err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"ppx sets {args[1]}: "), err


def test_unknown_global_names_the_programs_draws(program_folder, capsys):
    args = ["sets", "simulate", "-s", "hier_prog:hierarchical", "--global", "nu", "--sets", "2"]
    code, _, err = ppx_in_process([*args, "--n", "3", "--store", "x.h5"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'nu'" in err and "'mu'" in err, err


@pytest.mark.parametrize("kind", ["npe", "pairs", "summed"])
def test_saved_estimators_load_and_answer_alike(trained, kind):
    from ppx.inference.sets import load_sets

    sets = load_sets(trained / "s.h5")
    sampler = StoreSimulator(sets)
    config = EstimatorConfig(kind, 1, hidden=16, embedding_dim=8)
    estimator = config.build(sets.prior)
    estimator.fit(sampler, steps=5, batch_size=32, progress=False)
    if kind == "pairs":
        estimator.finetune(sampler, n_range=(2, 12), num_sets=50, steps=5, progress=False)
    path = save_estimator(estimator, config, trained / f"{kind}.pt", {"simulator": "hier"})
    saved = load_estimator(path)
    assert saved.config.kind == kind and saved.metadata == {"simulator": "hier"}
    events = torch.linspace(-1, 1, 6).unsqueeze(1)
    theta = torch.linspace(-2, 2, 5).unsqueeze(1)
    assert torch.allclose(
        saved.estimator.log_prob(theta, events), estimator.log_prob(theta, events)
    )
    assert saved.n_range == (None if kind == "summed" else estimator.n_range)


def test_store_simulator_subsamples_sets_of_the_same_theta(trained):
    from ppx.inference.sets import load_sets

    sets = load_sets(trained / "s.h5")
    sampler = StoreSimulator(sets)
    generator = torch.Generator().manual_seed(0)
    theta, events = sampler(30, 4, generator)
    assert theta.shape == (30, 1) and events.shape == (30, 4, 1)
    by_theta = {
        float(t): set(sets.events(k)[:, 0].tolist()) for k, t in enumerate(sets.theta[:, 0])
    }
    for t, chosen in zip(theta[:, 0], events[:, :, 0], strict=True):
        values = chosen.tolist()
        assert len(set(values)) == 4 and set(values) <= by_theta[float(t)]
    _, pilot = sampler(10, 50, generator)  # no stored set is that large: with replacement
    assert pilot.shape == (10, 50, 1)
