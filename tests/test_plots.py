"""The figures and tables of the ``ppx`` command line: what a physicist reads off them."""

from __future__ import annotations

import io
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

import ppx
from ppx.cli import plots, report
from ppx.cli.main import app
from ppx.cli.panels import DPI, save
from ppx.cli.quantities import describe, latent_names
from ppx.cli.tables import plus_minus
from ppx.inference import Empirical
from ppx.simulators.tau_decay import CHANNELS

pytest.importorskip("matplotlib")

DOCS = Path(__file__).resolve().parents[1] / "docs" / "img"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height in pixels, from the PNG header."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", header[16:24])


def printed(function, *args, width: int = 80, **kwargs) -> str:
    """What ``function(console, *args)`` prints on a console ``width`` columns wide."""
    console = Console(width=width, record=True, file=io.StringIO())
    function(console, *args, **kwargs)
    return console.export_text()


def gaussian_is(n: int = 2000, seed: int = 0) -> Empirical:
    """Weighted draws of the Gaussian model's posterior (prior proposal), as a saved IS run."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(1.0, 5**0.5, n)
    log_weights = -((8 - mu) ** 2 + (9 - mu) ** 2) / 4
    metadata = {"engine": "importance_sampling", "model": "gaussian"}
    return Empirical([{"mu": m} for m in mu], log_weights, metadata=metadata)


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "100"})
    return result.exit_code, result.output


def table_row(text: str, key: str) -> list[str]:
    """The cells after ``key`` in its row of a printed table."""
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split("│") if cell.strip()]
        if cells and cells[0] == key:
            return cells[1:]
    raise AssertionError(f"no row {key!r} in:\n{text}")


def steps(ax) -> tuple[np.ndarray, np.ndarray]:
    """The heights and edges of the (unfilled) step histogram of a panel."""
    from matplotlib.patches import StepPatch

    patch = [p for p in ax.patches if isinstance(p, StepPatch)][-1]
    data = patch.get_data()
    return np.asarray(data.values), np.asarray(data.edges)


def test_weighted_histogram_is_the_weighted_density_not_a_resample():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, 4000)
    weights = x / x.sum()  # the weighted density is 2x, the unweighted one 1
    post = Empirical([{"x": v} for v in x], np.log(weights))
    figures, _ = plots.draw(post)
    heights, edges = steps(figures["marginals"].axes[0])
    expected = np.histogram(x, edges, weights=weights)[0] / np.diff(edges)
    np.testing.assert_allclose(heights, expected, rtol=1e-12)  # resampling would scatter
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert np.abs(heights - 2 * centres).max() < 0.35  # and it is 2x, not flat
    assert set(figures) == {"marginals", "weights"}  # no trace plot of IS draws


def test_discrete_latents_are_bars_named_by_the_simulator():
    rng = np.random.default_rng(2)
    channel = rng.choice(len(CHANNELS), 500)
    records = [{"px": rng.uniform(-1, 1), "channel": np.int64(c)} for c in channel]
    post = Empirical(records, metadata={"engine": "prior", "model": "tau_decay"})
    figures, _ = plots.draw(post)
    px, bars = figures["marginals"].axes[:2]
    assert px.get_xlabel() == "$p_x^{\\tau}$ [GeV]"
    assert [t.get_text() for t in bars.get_xticklabels()] == list(CHANNELS)
    heights = [p.get_height() for p in bars.patches]
    expected = np.bincount(channel, minlength=len(CHANNELS)) / len(channel)
    np.testing.assert_allclose(heights, expected)
    assert "corner" not in figures  # one continuous latent: no corner
    hmm_like = Empirical([{"state0": float(s)} for s in rng.integers(0, 3, 100)])
    (panel,) = plots.draw(hmm_like)[0]["marginals"].axes[:1]
    assert len(panel.patches) == 3 and panel.get_ylabel() == "posterior probability"


def test_a_single_latent_gets_no_corner_and_chains_get_trace_plots():
    assert set(plots.draw(gaussian_is())[0]) == {"marginals", "weights"}
    chains = Empirical(
        [{"mu": v} for v in np.random.default_rng(3).normal(7.25, 0.9, 400)],
        chain=np.repeat([0, 1], 200),
        metadata={"engine": "rmh"},
    )
    figures, _ = plots.draw(chains)
    assert set(figures) == {"marginals", "trace"}
    assert len(figures["trace"].axes[0].get_lines()) == 2  # a line per chain


def test_images_stay_small_and_say_which_latents_are_shown(tmp_path):
    rng = np.random.default_rng(4)
    records = [{f"z{i}": v for i, v in enumerate(row)} for row in rng.normal(size=(150, 20))]
    post = Empirical(records, chain=np.repeat([0, 1, 2], 50), metadata={"engine": "rmh"})
    figures, notes = plots.draw(post)
    assert set(figures) == {"marginals", "trace", "corner"}
    assert notes[0].startswith("first 16 of 20 latents and tags shown; choose with --name")
    assert len(figures["corner"].axes) == plots.MAX_CORNER**2
    for figure in figures.values():
        assert max(figure.get_size_inches()) * DPI <= 1950
    path = save(figures["corner"], tmp_path / "corner.png")  # the largest figure
    assert max(png_size(path)) <= 1950 and path.stat().st_size < 200_000


def test_truth_lines_from_values_and_category_names():
    figures, _ = plots.draw(gaussian_is(), truth={"mu": 7.25})
    lines = figures["marginals"].axes[0].get_lines()
    assert any(np.allclose(line.get_xdata(), 7.25) for line in lines)
    records = [{"channel": np.int64(c)} for c in (0, 2, 2, 4)]
    post = Empirical(records, metadata={"model": "tau_decay"})
    lines = plots.draw(post, truth={"channel": "pi_nu"})[0]["marginals"].axes[0].get_lines()
    assert any(np.allclose(line.get_xdata(), CHANNELS_INDEX["pi_nu"]) for line in lines)
    with pytest.raises(report.UnknownQuantity, match="available: channel"):
        plots.draw(post, truth={"nosuch": 1.0})


CHANNELS_INDEX = {name: index for index, name in enumerate(CHANNELS)}


def test_plot_command_truth_and_unknown_name(tmp_path):
    gaussian_is(300).save(tmp_path / "post.h5")
    code, output = cli("plot", str(tmp_path / "post.h5"), "--truth", "mu=7.25")
    assert code == 0, output
    assert png_size(tmp_path / "post_marginals.png")[0] <= 2000
    code, output = cli("plot", str(tmp_path / "post.h5"), "--name", "nosuch")
    assert code == 2 and "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "nosuch" in line]
    assert "available: mu" in line
    code, output = cli("plot", str(tmp_path / "post.h5"), "--truth", "mu")
    assert code == 2 and "name=value" in output


def test_tables_name_categories_and_quote_fractions_with_errors():
    rng = np.random.default_rng(5)
    records = [{"pz": rng.uniform(40, 50), "channel": np.int64(c)} for c in rng.integers(0, 8, 400)]
    text = printed(report.print_prior, "prior of tau_decay", records, simulator="tau_decay")
    assert "pz [GeV]" in text and "pi_pi0_pi0_nu" in text
    share = float(np.mean([int(r["channel"]) == 4 for r in records]))
    row = next(line for line in text.splitlines() if "pi_pi0_nu " in line)
    value, error = row.split("│")[2].split("±")  # a fraction, not a mean channel number
    error_text = plus_minus(share, (share * (1 - share) / 400) ** 0.5).split("± ")[1]
    assert abs(float(value) - share) < 6e-4 and error.strip() == error_text
    post = Empirical([{"state0": np.int64(s)} for s in (0, 1, 1, 2)], [0.0, 0.0, 0.0, -1.0])
    text = printed(report.print_weighted, post, "hmm", {"obs0": 0.9})
    assert "given obs0=0.9:" in text and "{" not in text and "mean" not in text


def test_rates_of_slow_priors_and_titles_keep_their_digits():
    assert report.rate_text(3, 70.0) == "0.0429 traces/s (23.3 s/trace)"
    assert report.rate_text(25, 2.0) == "12.5 traces/s"
    assert report.rate_text(5000, 2.0) == "2,500 traces/s"
    assert report.prior_title("gillespie", 3, 70.0).startswith("prior of gillespie: 3 traces, 0.04")
    assert report.observed_text({"obs0": 8.0, "obs1": 9.0}) == "obs0=8, obs1=9"
    text = printed(report.print_weighted, gaussian_is(), "gaussian", {"obs0": 8.0}, width=40)
    assert "log evidence: " in text and "ESS" in text.replace("\n", " ")


def test_tags_and_controlled_latents_are_summarised_not_uncontrolled_flats():
    from torch.distributions import Categorical, Uniform

    def event() -> None:  # the shape of a Pythia event: many flats, a channel, tags
        for _ in range(50):
            ppx.sample(Uniform(0.0, 1.0), name="pythia/flat", control=False)
        ppx.sample(Categorical(torch.ones(3)), name="tau-/channel")
        ppx.tag(torch.randint(5, 40, (1,)).double(), "charged_multiplicity")
        ppx.tag(10 * torch.rand(5), "tau_visible")

    model = ppx.LocalModel(event)
    traces = [model.run() for _ in range(20)]
    keys = latent_names(traces)
    assert keys == ["tau-/channel", "charged_multiplicity", "tau_visible"]
    text = printed(report.print_prior, "prior", ({k: t[k] for k in keys} for t in traces))
    assert "tau_visible[4]" in text and "charged_multiplicity" in text and "flat" not in text
    assert table_row(text, "tau-/channel")[0].startswith("0.")  # fractions of 0, 1, 2


def test_simulators_state_units_and_names_through_the_registry():
    assert describe("tau_decay --channels pi_nu k_nu")["channel"]["categories"] == [
        "pi_nu",
        "k_nu",
    ]
    assert describe("tau_decay")["pz"]["unit"] == "GeV"
    assert describe("ipc:///tmp/ppx-x") == {} and describe("gaussian") == {}


def _hmm_posterior(num_traces: int) -> Empirical:
    """Importance sampling of the HMM with the exact marginals as proposals."""
    from torch.distributions import Categorical

    from ppx.simulators import hmm

    marginals = torch.tensor(hmm.exact_posterior_marginals(), dtype=torch.float32)
    proposal = {f"state{t}": Categorical(row) for t, row in enumerate(marginals)}
    observe = {f"obs{t}": v for t, v in enumerate(hmm.DEFAULT_OBSERVATIONS)}
    model = ppx.LocalModel(hmm.model, name="hmm")
    post = ppx.inference.importance_sampling(model, observe, num_traces, proposal=proposal)
    post.metadata.update(model="hmm", observe=observe)
    return post


def _two_moons(num_draws: int) -> Empirical:
    """Two Moons by kernel ABC: prior draws weighted by a 0.015-wide Gaussian kernel
    around sbibm's observation 1 (draws of weight < e^-20 of the largest left out)."""
    from ppx.simulators.sbi_tasks import get_task

    task = get_task("two_moons")
    theta = task.prior.sample((num_draws,))
    x_obs = torch.tensor([-0.6397, 0.1623])
    log_weights = -((task.simulate(theta) - x_obs) ** 2).sum(1) / (2 * 0.015**2)
    keep = log_weights > log_weights.max() - 20
    records = [{"theta": row} for row in theta[keep].numpy()]
    metadata = {"engine": "kernel ABC", "model": "two_moons", "observe": {"x": x_obs.tolist()}}
    return Empirical(records, log_weights[keep].numpy(), metadata=metadata)


def _posteriors() -> dict[str, tuple[Empirical, dict[str, float | str]]]:
    from torch.distributions import Normal

    from ppx.inference.records import record_of
    from ppx.simulators import gaussian, tau_decay

    model = ppx.LocalModel(gaussian.model, name="gaussian")
    observe = {"obs0": 8.0, "obs1": 9.0}
    known = {"model": "gaussian", "observe": observe}
    proposal = {"mu": Normal(7.0, 1.5)}
    weighted = ppx.inference.importance_sampling(model, observe, 2000, proposal=proposal)
    weighted.metadata.update(known)
    runs = [ppx.inference.rmh(model, observe, 1000, proposal="random_walk", seed=s) for s in (1, 2)]
    gaussian_rmh = Empirical.merge(runs, renumber_chains=True)
    gaussian_rmh.metadata.update(known)
    tau = ppx.LocalModel(tau_decay.make_model(calorimeter=False), name="tau_decay")
    tau_prior = Empirical(
        [record_of(tau.run()) for _ in range(1000)],
        metadata={"engine": "prior", "model": "tau_decay"},
    )
    return {
        "gaussian_is": (weighted, {}),
        "gaussian_rmh": (gaussian_rmh, {}),
        "hmm_is": (_hmm_posterior(600), {}),
        "tau_decay_prior": (tau_prior, {}),
        "two_moons": (_two_moons(1_000_000), {"theta[0]": -0.8177, "theta[1]": -0.5757}),
    }


@pytest.mark.slow
def test_regenerate_the_documentation_plots(tmp_path):
    """The plots of docs/img; PPX_REGENERATE_DOCS=1 writes them there (commit them)."""
    folder = DOCS if os.environ.get("PPX_REGENERATE_DOCS") == "1" else tmp_path
    started = time.perf_counter()
    written = []
    for stem, (posterior, truth) in _posteriors().items():
        written += plots.plot(posterior, folder, stem, truth=truth)
    assert {p.name for p in written} >= {
        "gaussian_is_marginals.png",
        "gaussian_is_weights.png",
        "gaussian_rmh_trace.png",
        "hmm_is_marginals.png",
        "tau_decay_prior_marginals.png",
        "tau_decay_prior_corner.png",
        "two_moons_corner.png",
    }
    for path in written:
        width, height = png_size(path)
        assert 300 <= min(width, height) and max(width, height) <= 2000, path
        assert path.stat().st_size < 150_000, path
    assert time.perf_counter() - started < 120
