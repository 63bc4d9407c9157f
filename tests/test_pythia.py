"""Pythia 8 under PPX: exact record/replay, statistics, settings errors, serving, tau channel."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import ppx

pytest.importorskip("pythia8mc")

from ppx.simulators.pythia import (  # noqa: E402
    ArraySource,
    NativeRecorder,
    PPXSource,
    PythiaSettingsError,
    PythiaSimulator,
    RecordingSource,
    build_pythia,
    regenerate,
    tau_channels,
)
from ppx.simulators.pythia.settings import PRESETS  # noqa: E402

#: Events replayed per preset: (through the PPX source under LocalModel, through RecordingSource).
EVENTS = {
    "ee_z_hadrons": (1000, 1000),
    "ee_z_tautau": (1000, 1000),
    "pp_z_tautau": (20, 100),
    "pp_ttbar": (10, 50),
}


def test_presets_are_shipped() -> None:
    assert set(EVENTS) <= set(PRESETS)


#: Presets replayed only in the extended tier (.ci/run's pytest -m slow): two suffice by default.
_EXTENDED = ("ee_z_hadrons", "pp_z_tautau")


@pytest.fixture(
    scope="module",
    params=[pytest.param(p, marks=pytest.mark.slow) if p in _EXTENDED else p for p in EVENTS],
)
def pair(request: pytest.FixtureRequest) -> tuple[str, PythiaSimulator, PythiaSimulator]:
    """A recording and a replaying simulator of one preset (two Pythia instances)."""
    preset = request.param
    recorder = PythiaSimulator(preset, flats=RecordingSource(12345))
    replayer = PythiaSimulator(preset, flats=ArraySource())
    return preset, recorder, replayer


def _replay(replayer: PythiaSimulator, values: np.ndarray) -> torch.Tensor:
    source = replayer.engine.source
    source.reset(values)
    trace = ppx.LocalModel(replayer).run()
    source.check()
    return trace.tags["final_state"]


def test_replay_recorded_flats_bit_for_bit(pair) -> None:
    preset, recorder, replayer = pair
    n_ppx, n_fast = EVENTS[preset]
    # 1. every flat a PPX draw under LocalModel, replayed from the trace's values
    recorder.engine.source = PPXSource()
    for _ in range(n_ppx):
        trace = ppx.LocalModel(recorder).run()
        values = np.array([float(d.value) for d in trace.draws if d.name == "pythia/flat"])
        assert torch.equal(_replay(replayer, values), trace.tags["final_state"])
    # 2. many events recorded by RecordingSource, replayed in reverse order
    source = RecordingSource(777)
    recorder.engine.source = source
    events = []
    for _ in range(n_fast):
        final = ppx.LocalModel(recorder).run().tags["final_state"]
        events.append((source.take(), final))
    for values, final in reversed(events):
        assert torch.equal(_replay(replayer, values), final)


def test_replay_controller_replays_controlled_flats() -> None:
    sim = PythiaSimulator("ee_z_hadrons", control_flats=True)
    model = ppx.LocalModel(sim)
    for _ in range(3):
        trace = model.run()
        assert all(d.controlled for d in trace.draws)
        replay = ppx.ReplayController({d.address: d.value for d in trace.draws})
        assert torch.equal(model.run(replay).tags["final_state"], trace.tags["final_state"])


def test_changing_one_draw_gives_a_different_valid_event() -> None:
    sim = PythiaSimulator("ee_z_hadrons", control_flats=True)
    model = ppx.LocalModel(sim)
    trace = model.run()
    values = {d.address: d.value for d in trace.draws}
    changed = 0
    for draw in trace.draws[:: max(len(trace) // 8, 1)]:  # many draws only accept/reject
        shifted = torch.tensor((float(draw.value) + 0.5) % 1.0, dtype=torch.float64)
        final = model.run(ppx.ReplayController({**values, draw.address: shifted}))
        final = final.tags["final_state"]
        changed += not torch.equal(final, trace.tags["final_state"])
        p = final[:, 1:].sum(0)
        assert torch.allclose(p, torch.tensor([91.2, 0.0, 0.0, 0.0], dtype=p.dtype), atol=1e-6)
    assert changed >= 2


def test_read_out_equals_pythia_particle_by_particle() -> None:
    """One ReadOut per event gives what per-particle calls give, for every observable."""
    from ppx.simulators.pythia.observables import OBSERVABLES, ReadOut, final_state

    pythia = build_pythia("ee_z_hadrons")
    charged, count = OBSERVABLES["charged_multiplicity"](), OBSERVABLES["final_state_count"]()
    for _ in range(5):
        assert pythia.next()
        final = [p for p in pythia.event.particles() if p.isFinal()]
        rows = [(p.id(), p.e(), p.px(), p.py(), p.pz()) for p in final]
        read = ReadOut(pythia.event)
        assert np.array_equal(read.final, np.array(rows).reshape(-1, 5))
        assert np.array_equal(final_state(pythia.event), read.final)
        assert charged(read) == charged(pythia.event) == [float(sum(p.isCharged() for p in final))]
        assert count(read) == [float(len(final))]


def test_ppx_flats_drawn_per_run_equal_flats_drawn_through_the_source() -> None:
    """The per-event fast path (PPXSource.for_run) records the very draws the source does."""
    sim = PythiaSimulator("ee_z_hadrons", flats="ppx")
    model = ppx.LocalModel(sim)
    torch.manual_seed(7)
    fast = model.run()
    source = sim.engine.source
    sim.engine.source = lambda: source()  # no for_run: every flat through PPXSource.__call__
    torch.manual_seed(7)
    slow = model.run()
    assert [d.address for d in fast.draws] == [d.address for d in slow.draws]
    assert torch.equal(fast.tags["final_state"], slow.tags["final_state"])


def test_native_record_regenerates_the_exact_values() -> None:
    native = NativeRecorder(build_pythia("ee_z_tautau"))
    replayer = PythiaSimulator("ee_z_tautau", flats=ArraySource())
    for seed in (1, 4242, 899_999_999):
        seed, count = native.next(seed)
        expected = _final_state_of(native.pythia)
        assert count > 10
        assert torch.equal(_replay(replayer, regenerate(seed, count)), expected)


def _final_state_of(pythia) -> torch.Tensor:
    from ppx.simulators.pythia import final_state

    return torch.from_numpy(final_state(pythia.event))


def test_native_flats_replay_by_seed() -> None:
    model = ppx.LocalModel(PythiaSimulator("ee_z_hadrons", flats="native", control_flats=True))
    trace = model.run()
    assert trace.tags["pythia/flat_count"] > 100
    again = model.run(ppx.ReplayController({"pythia/seed": trace["pythia/seed"]}))
    assert torch.equal(again.tags["final_state"], trace.tags["final_state"])


def _multiplicities(sim: PythiaSimulator, n: int) -> np.ndarray:
    model = ppx.LocalModel(sim)
    return np.array([float(model.run().result[0]) for _ in range(n)])


def _same_distribution(a: np.ndarray, b: np.ndarray, alpha: float) -> bool:
    """Chi-squared test of homogeneity on multiplicity bins (merged to >= 5 expected)."""
    from scipy.stats import chi2_contingency

    edges = np.quantile(np.concatenate([a, b]), np.linspace(0, 1, 9))
    edges = np.unique(np.round(edges)) + 0.5
    counts = [np.histogram(x, np.concatenate([[-1.0], edges[:-1], [1e9]]))[0] for x in (a, b)]
    table = np.array(counts)
    table = table[:, table.sum(0) > 0]
    return chi2_contingency(table).pvalue > alpha


@pytest.mark.slow
def test_charged_multiplicity_matches_native_pythia() -> None:
    """PPX engine (torch uniforms) vs Pythia's own generator, alpha = 0.01, seeds fixed."""
    native = PythiaSimulator("ee_z_hadrons", flats="native")
    torch.manual_seed(1)
    reference = np.array([float(ppx.LocalModel(native).run().result[0]) for _ in range(3000)])
    sim = PythiaSimulator("ee_z_hadrons", flats="ppx")
    ppx_values = _multiplicities(sim, 1000)
    assert _same_distribution(ppx_values, reference, alpha=0.01)
    source = PPXSource()
    sim.engine.source = lambda: source() ** 2  # deliberately wrong uniforms
    assert not _same_distribution(_multiplicities(sim, 1000), reference, alpha=0.01)


def test_bad_settings_raise_before_any_run(tmp_path) -> None:
    with pytest.raises(PythiaSettingsError, match=r"Foo:bar = 1.*line 2"):
        PythiaSimulator(["Beams:eCM = 91.2", "Foo:bar = 1"])
    cmnd = tmp_path / "bad.cmnd"
    cmnd.write_text("! a comment\nBeams:eCM = 91.2\nBeams:eCM = lots\n")
    with pytest.raises(PythiaSettingsError, match=r"Beams:eCM = lots.*bad\.cmnd:3"):
        PythiaSimulator(cmnd)
    with pytest.raises(PythiaSettingsError, match="init"):
        PythiaSimulator(["Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 91.2"])
    with pytest.raises(PythiaSettingsError, match="neither a preset"):
        PythiaSimulator("no_such_preset")


def test_served_in_a_subprocess_gives_valid_events() -> None:
    argv = [sys.executable, "-m", "ppx.simulators.pythia", "--preset", "ee_z_hadrons"]
    with ppx.RemoteModel.spawn(argv) as model:
        for _ in range(2):
            trace = model.run()
            final = torch.as_tensor(trace.tags["final_state"])
            assert len(trace.draws) > 100 and final.shape[1] == 5
            p = final[:, 1:].sum(0)
            assert torch.allclose(p, torch.tensor([91.2, 0.0, 0.0, 0.0], dtype=p.dtype), atol=1e-6)


def test_served_record_mode_replays_over_the_wire_bit_for_bit() -> None:
    """Record in bulk (batched_draws), replay with the values in Run, and draw by draw."""
    argv = [sys.executable, "-m", "ppx.simulators.pythia", "--preset", "ee_z_hadrons"]
    with (
        ppx.RemoteModel.spawn(argv) as batched,
        ppx.RemoteModel.spawn(argv, batched=False) as single,
    ):
        assert "batched_draws" in batched.capabilities
        traces = [batched.run() for _ in range(20)]
        for i, trace in enumerate(traces):
            replay = ppx.ReplayController({d.address: d.value for d in trace.draws})
            models = (batched, single) if i == 0 else (batched,)  # one slow, 1,100 round trips
            for model in models:
                again = model.run(replay)
                assert [d.address for d in again.draws] == [d.address for d in trace.draws]
                assert torch.equal(again.tags["final_state"], trace.tags["final_state"])


def _daughters(pythia, tau: int) -> list[int]:
    for particle in pythia.event.particles():
        if particle.id() == tau and particle.daughter1() > 0:
            ids = sorted(pythia.event[d].id() for d in particle.daughterList())
            if tau not in ids:
                return ids
    raise AssertionError(f"no decayed {tau} in the event")


def test_forced_tau_channel_is_the_channel_taus_decay_in() -> None:
    sim = PythiaSimulator("ee_z_tautau", tau_channel=True, observables=["tau_visible"])
    model = ppx.LocalModel(sim)
    channels = sim.tau_handler.channels
    for minus, plus in ((0, 3), (2, 2), (4, 1)):
        trace = model.run(observe={"tau-/channel": minus, "tau+/channel": plus})
        assert int(trace["tau-/channel"]) == minus and int(trace["tau+/channel"]) == plus
        assert _daughters(sim.pythia, 15) == sorted(channels[minus][2])
        assert _daughters(sim.pythia, -15) == sorted(-i for i in channels[plus][2])


def test_tau_channel_prior_matches_branching_ratios() -> None:
    from ppx.simulators.tau_decay import branching_fractions, mass

    pythia = build_pythia("ee_z_tautau")
    channels = tau_channels(pythia)
    assert len(channels) >= 30 and abs(sum(r for _, r, _ in channels) - 1.0) < 1e-3
    assert abs(pythia.particleData.m0(15) - mass(15)) < 1e-3  # Pythia vs particle (PDG)
    by_products = {tuple(sorted(p)): r for _, r, p in channels}
    reference, _ = branching_fractions()  # the PDG 2026 values
    assert by_products[(-211, 16)] == pytest.approx(reference["pi_nu"], abs=0.01)
    assert by_products[(-12, 11, 16)] == pytest.approx(reference["e_nu_nu"], abs=0.01)
    assert by_products[(-14, 13, 16)] == pytest.approx(reference["mu_nu_nu"], abs=0.01)


def test_controlled_tau_channel_under_the_prior_has_pythia_frequencies() -> None:
    sim = PythiaSimulator("ee_z_tautau", tau_channel=True, observables=["tau_visible"])
    model = ppx.LocalModel(sim)
    leptonic = [int(model.run()["tau-/channel"]) in (2, 3) for _ in range(60)]
    assert 0.15 < np.mean(leptonic) < 0.55  # BR(e) + BR(mu) = 0.35


def test_calorimeter_observation_of_a_tau_event() -> None:
    from ppx.simulators.calorimeter import Calorimeter

    sim = PythiaSimulator(
        "ee_z_tautau", tau_channel=True, observables=["tau_visible"], calorimeter=Calorimeter()
    )
    model = ppx.LocalModel(sim)
    image = model.run().draw("calorimeter").distribution.mean
    trace = model.run(observe={"calorimeter": image})
    assert trace.draw("calorimeter").observed and trace.draw("calorimeter").statement == "observe"
    assert np.isfinite(trace.log_likelihood)


def test_unknown_observable_and_tau_mode() -> None:
    with pytest.raises(ValueError, match="unknown observable"):
        PythiaSimulator("ee_z_hadrons", observables=["nope"])
    settings = [line for line in _preset_lines("ee_z_tautau") if "TauDecays" not in line]
    with pytest.raises(ValueError, match="TauDecays:mode = 0"):
        PythiaSimulator(settings, tau_channel=True)


def _preset_lines(name: str) -> list[str]:
    from ppx.simulators.pythia.settings import load_settings

    return [s.line for s in load_settings(name)]


def test_example_pythia_tau_runs() -> None:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "pythia_tau.py"
    out = subprocess.run(
        [sys.executable, str(script), "--num-traces", "300"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "true tau- channel" in out.stdout and "P(" in out.stdout
