"""The simulator registry: every simulator by name, its options, and serving it by name."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

import ppx
from ppx.simulators import registry

#: Options a simulator cannot run without.
REQUIRED = {"sbi_tasks": ["--task", "two_moons"]}

EXPECTED = {
    "branching",
    "calorimeter",
    "gaussian",
    "gillespie",
    "hmm",
    "pythia",
    "rejection",
    "sbi_tasks",
    "tau_decay",
}


def _extra_installed(name: str) -> bool:
    modules = {"pythia": "pythia8mc", "sbi": "sbi"}
    extra = registry.entry(name).extra
    return extra is None or importlib.util.find_spec(modules[extra]) is not None


def test_names_are_sorted_and_complete():
    assert registry.names() == sorted(EXPECTED)
    for name in registry.names():
        found = registry.entry(name)
        assert found.name == name
        assert found.module == f"ppx.simulators.{name}"
        assert found.summary and "\n" not in found.summary
        assert importlib.util.find_spec(found.module) is not None


def test_listing_imports_no_simulator():
    code = (
        "import sys\n"
        "from ppx.simulators import registry\n"
        "[registry.entry(n) for n in registry.names()]\n"
        "loaded = [m for m in sys.modules if m.startswith('ppx.simulators.')]\n"
        "assert loaded == ['ppx.simulators.registry'], loaded\n"
        "assert 'pythia8mc' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_simulator_builds(name):
    if not _extra_installed(name):
        pytest.skip(f"the {registry.entry(name).extra!r} extra is not installed")
    fn, model_name = registry.build(name, REQUIRED.get(name, []))
    assert callable(fn)
    assert model_name == name
    assert registry.parser(name).prog == f"python -m ppx.simulators.{name}"


def test_options_reach_the_simulator():
    fn, _ = registry.build("gaussian", ["--num-observations", "3", "--prior-mean", "2"])
    trace = ppx.LocalModel(fn).run()
    assert [d.name for d in trace] == ["mu", "obs0", "obs1", "obs2"]
    assert float(trace.draw("mu").distribution.loc) == 2.0


def test_wrong_name_lists_the_valid_ones():
    for call in (registry.entry, registry.parser, registry.build, registry.argv):
        with pytest.raises(ValueError, match="unknown simulator 'gausian'.*gaussian, gillespie"):
            call("gausian")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gaussian", ["--bogus"], "unrecognized arguments: --bogus"),
        ("gaussian", ["--num-observations", "two"], "invalid int value: 'two'"),
        ("gaussian", ["--num-observations", "-1"], "num_observations must be >= 0"),
        ("gillespie", ["--network", "nope"], "invalid choice: 'nope'"),
        ("gillespie", ["--rate", "nope=1"], "unknown rate names"),
        ("sbi_tasks", [], "required: --task"),
    ],
)
def test_bad_option_is_a_value_error_naming_the_simulator(name, options, message):
    with pytest.raises(ValueError, match=rf"simulator '{name}': .*{message}"):
        registry.build(name, options)


def test_missing_extra_says_what_to_install(monkeypatch):
    missing = registry.SimulatorEntry("demo", "ppx_no_such_module", "needs an extra", "demo")
    monkeypatch.setitem(registry._ENTRIES, "demo", missing)
    with pytest.raises(ImportError, match=r"pip install 'ppx-engine\[demo\]'"):
        registry.build("demo")


def test_missing_pythia_says_what_to_install(monkeypatch):
    for module in [m for m in sys.modules if m.startswith("ppx.simulators.pythia")]:
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "pythia8mc", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'ppx-engine\[pythia\]'"):
        registry.build("pythia")


def test_argv_runs_the_module():
    argv = registry.argv("gillespie", ["--network", "association"])
    assert argv[0] == sys.executable and argv[-3:] == [
        "ppx.simulators.gillespie",
        "--network",
        "association",
    ]
    if sys.version_info >= (3, 11):  # nothing imported from the working directory
        assert argv[1:3] == ["-P", "-m"]


def test_served_by_name_in_a_subprocess(ipc_address):
    """``python -m ppx.simulators.gaussian --address ADDR`` serves what ``build`` makes."""
    argv = registry.argv("gaussian", ["--num-observations", "1"])
    with ppx.RemoteModel.spawn(argv, address=ipc_address) as model:
        assert model.name == "gaussian"
        trace = model.run(observe={"obs0": 8.0})
    assert [d.address for d in trace] == ["mu__Normal__1", "obs0__Normal__1"]
    assert trace.draw("obs0").observed
    local = ppx.LocalModel(registry.build("gaussian", ["--num-observations", "1"])[0])
    replay = ppx.ReplayController({d.address: d.value for d in trace})
    assert local.run(controller=replay, observe={"obs0": 8.0}).log_joint == pytest.approx(
        trace.log_joint
    )
