"""The ``ppx`` command line, run as real subprocesses (``--simulator`` spawns a simulator)."""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ppx
from ppx.simulators import gaussian

# A wide terminal, so that rich neither wraps the table title nor the error boxes.
ENV = {**os.environ, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"}


def ppx_cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ppx.cli ARGS`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "ppx.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=ENV,
        cwd=cwd,
    )


def table_row(stdout: str, latent: str) -> list[str]:
    """The cells after the latent's name in its row of the printed rich table."""
    for line in stdout.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line)]
        cells = [cell for cell in cells if cell]
        if cells and cells[0] == latent:
            return cells[1:]
    raise AssertionError(f"no row for {latent!r} in:\n{stdout}")


def readme_first_command() -> list[str]:
    """The arguments of ``ppx`` in README's first command (the line after the opening fence)."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    first = readme.split("```sh\n", 1)[1].splitlines()[0]
    command = shlex.split(first.rsplit("&&", 1)[1])
    assert command[0] == "ppx", first
    return command[1:]


# one seed in the default tier, two more in the extended one (about 20 s each)
@pytest.mark.parametrize(
    "seed", [11, pytest.param(12, marks=pytest.mark.slow), pytest.param(13, marks=pytest.mark.slow)]
)
def test_readme_first_command_prints_the_exact_answer_every_time(tmp_path, seed):
    """Within 4 of its own printed MC errors of the exact 7.25, an error <= 0.03, no warning."""
    done = ppx_cli(*readme_first_command(), "--seed", str(seed), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"seed {seed} (--seed {seed} repeats this run)" in done.stdout
    mean, std, error = (float(cell) for cell in table_row(done.stdout, "mu")[:3])
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert error <= 0.03, done.stdout
    assert abs(mean - exact_mean) < 4 * error, done.stdout
    assert abs(std - exact_std) < 0.1, done.stdout
    assert "warning" not in done.stdout + done.stderr, done.stdout + done.stderr


@pytest.mark.parametrize(
    "where", ["", pytest.param("--workers 2", marks=pytest.mark.slow)], ids=["here", "dask"]
)
def test_infer_gaussian_matches_exact_posterior(tmp_path, where):
    args = "infer --simulator gaussian --observe obs0=8 --observe obs1=9 -n 3000 --seed 7"
    done = ppx_cli(*f"{args} {where}".split(), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ess = float(re.search(r"ESS ([0-9.]+)", done.stdout).group(1))
    mean = float(table_row(done.stdout, "mu")[0])
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert exact_mean == pytest.approx(7.25) and exact_std == pytest.approx(0.9128709)
    assert ess > 5, done.stdout
    assert abs(mean - exact_mean) < 4 * exact_std / math.sqrt(ess), done.stdout
    assert "log evidence:" in done.stdout
    assert "seed 7 (--seed 7 repeats this run)" in done.stdout
    # ~0.8% of prior traces count here: an ESS of ~25 of 3000 is flagged, with advice
    assert "warning: effective sample size" in done.stdout, done.stdout
    assert "--ess" in done.stdout, done.stdout


def test_prior_writes_a_trace_dataset(tmp_path):
    out = tmp_path / "prior"
    done = ppx_cli("prior", "--simulator", "gaussian", "-n", "500", "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "500 traces" in done.stdout and f"wrote 500 traces to {out}" in done.stdout
    prior = ppx.inference.Empirical.load(out)  # the trace dataset, as prior records
    values = prior.values("mu")
    assert values.shape[0] == 500
    assert abs(values.mean() - 1.0) < 4 * math.sqrt(5 / 500)
    assert prior.metadata["num_traces"] == 500
    assert prior.metadata["model"] == "gaussian"
    done = ppx_cli("prior", "--simulator", "gaussian", "-n", "5", "--out", "p.h5", cwd=tmp_path)
    assert done.returncode == 2 and "writes a trace dataset, a folder" in done.stderr


def test_prior_against_served_address(serve_in_thread, tmp_path):
    with serve_in_thread(gaussian.model, "gaussian") as address:
        done = ppx_cli("prior", "--address", address, "-n", "50", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prior of gaussian: 50 traces" in done.stdout
    mean, std, low, high = (float(cell) for cell in table_row(done.stdout, "mu"))
    assert low <= mean <= high and std > 0
    assert abs(mean - 1.0) < 4 * math.sqrt(5 / 50)


def test_serve_then_connect_then_sigterm(ipc_address, tmp_path):
    server = subprocess.Popen(
        [sys.executable, "-m", "ppx.cli", "serve", "gaussian", "--address", ipc_address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=tmp_path,
    )
    try:
        with ppx.RemoteModel(ipc_address, timeout=30) as model:
            assert model.name == "gaussian"
            trace = model.run(observe={"obs0": 8.0, "obs1": 9.0})
            assert np.isfinite(float(trace["mu"])) and np.isfinite(trace.log_likelihood)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=20)
        assert server.returncode == 0, stderr
        assert "Traceback" not in stderr
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def ppx_in_process(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``ppx ARGS`` in this process (fast: no new interpreter); (exit code, stdout, stderr)."""
    from ppx.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(args)
    captured = capsys.readouterr()
    return int(exit_.value.code or 0), captured.out, captured.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["prior", "--simulator", "nope", "-n", "2"], "unknown simulator 'nope'"),
        (["prior", "-n", "2"], "give exactly one of --simulator"),
        (
            ["infer", "--simulator", "gaussian", "--address", "ipc:///tmp/ppx-none", "-n", "2"],
            "give exactly one of --simulator",
        ),
        (["infer", "--simulator", "gaussian", "--observe", "obs0", "-n", "2"], "name=value"),
        (
            ["infer", "--simulator", "gaussian", "--observe", "obs0=abc", "-n", "2"],
            "'abc' is not a number",
        ),
        (["serve", "gaussian", "--address", "tcp://0.0.0.0:5555"], "--allow-remote"),
        (
            ["infer", "--simulator", "gaussian", "-o", "obsX=8", "-n", "5"],
            "'gaussian' has no draw named 'obsX'; its observe statements: obs0, obs1",
        ),
        (["infer", "-s", "gaussian", "--engine", "rmh", "--burn-in", "-5"], "--burn-in"),
        (["infer", "-s", "gaussian", "--workers", "0"], "--workers"),
        (["infer", "-s", "gaussian", "--timeout", "-1"], "--timeout"),
        (["infer", "-s", "gaussian", "--ess", "100", "--engine", "rmh"], "--ess is for"),
        (["infer", "--nosuch"], "No such option: --nosuch"),
    ],
    ids=[
        "unknown-simulator", "neither", "both", "observe-no-equals", "observe-nan",
        "remote-bind", "unknown-observation", "negative-burn-in", "no-workers",
        "negative-timeout", "ess-with-rmh", "unknown-option",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_with_exit_code_2(args, message, capsys):
    code, out, err = ppx_in_process(args, capsys)
    assert code == 2, out + err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"ppx {args[0]}: "), err


def test_a_missing_optional_package_names_its_pip_line(tmp_path):
    program = (
        "import sys; sys.modules['sbi'] = None; from ppx.cli.main import main; "
        "main(['sbi', 'train', 'sims.h5'])"
    )
    (tmp_path / "sims.h5").touch()
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=tmp_path, env=ENV
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "ppx: this needs the optional package 'sbi': pip install 'ppx-engine[sbi]' "
        "(in a clone: pip install -e '.[sbi]')"
    ]


def interrupted(args: str, progress: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``ppx ARGS``, Ctrl-C it once it shows progress (a plain stderr line naming
    ``progress``, one every 5 s off a terminal); (exit code, stdout, stderr)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ppx.cli", *args.split()], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=ENV, cwd=cwd,
    )  # fmt: skip
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            if progress in line:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return process.returncode, out, "".join(lines) + err


def test_ctrl_c_during_importance_sampling_keeps_the_traces(tmp_path):
    args = "infer -s gaussian -o obs0=8 -o obs1=9 --ess 1e9 -n 100000000 --seed 1"
    code, out, err = interrupted(args, "importance sampling to ESS", tmp_path)
    assert code == 130, err
    saved = re.search(r"kept (\d+) weighted traces \(ESS [0-9.]+\) in (\S+);", out)
    assert saved is not None, out + err
    posterior = ppx.inference.Empirical.load(tmp_path / saved.group(2))
    assert len(posterior) == int(saved.group(1)) > 0
    assert "Traceback" not in err and not list(tmp_path.glob("ppx-*/"))
    assert "\r" not in err  # not a terminal: plain progress lines, no redrawn bar


def test_ctrl_c_during_rmh_says_how_to_resume(tmp_path):
    args = "infer -s gaussian -o obs0=8 -o obs1=9 --engine rmh -n 40000 --seed 2 --out p.h5"
    code, out, err = interrupted(args, "RMH", tmp_path)
    assert code == 130, out + err
    assert "run the same command again to resume from p.h5" in out, out + err
    assert "Traceback" not in err, err


@pytest.mark.parametrize("chains", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_infer_rmh_saves_and_plots_the_posterior(tmp_path, chains):
    args = (
        "infer --engine rmh --simulator gaussian -o obs0=8 -o obs1=9 -n 1500 --seed 3 "
        f"--proposal random_walk --chains {chains} --out post.h5"
    ).split()
    done = ppx_cli(*args, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    mean, std, error, rhat, ess, _ = table_row(done.stdout, "mu")
    exact_mean, exact_std = gaussian.exact_posterior([8.0, 9.0])
    assert abs(float(mean) - exact_mean) < 4 * exact_std / math.sqrt(float(ess))
    assert float(error) == pytest.approx(exact_std / math.sqrt(float(ess)), rel=0.2)
    assert "acceptance per chain" in done.stdout and (tmp_path / "post.h5").exists()
    if chains > 1:
        assert float(rhat) < 1.05
    plotted = ppx_cli("plot", "post.h5", cwd=tmp_path, timeout=120)
    assert plotted.returncode == 0, plotted.stderr
    for suffix in ("marginals", "trace"):
        assert (tmp_path / f"post_{suffix}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "post_corner.png").exists()  # one latent: no corner plot


def test_plot_refuses_a_file_that_is_not_a_posterior(tmp_path):
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    done = ppx_cli("plot", "junk.h5", cwd=tmp_path)
    assert done.returncode == 2 and "not a PPX posterior" in done.stdout + done.stderr


def test_train_then_infer_with_the_network(tmp_path):
    net = tmp_path / "net.pt"
    names = ["--observe-name", "obs0", "--observe-name", "obs1"]
    done = ppx_cli(
        "train", "--simulator", "gaussian", *names, "-n", "5000", "--learning-rate", "0.003",
        "--out", str(net),
        cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert net.exists() and (tmp_path / "net.loss.png").exists()
    args = "infer --simulator gaussian -o obs0=8 -o obs1=9 --engine ic -n 500 --seed 3"
    done = ppx_cli(*args.split(), "--network", str(net), cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    ess = float(re.search(r"ESS ([0-9.]+)", done.stdout).group(1))
    mean = float(table_row(done.stdout, "mu")[0])
    assert ess > 25, done.stdout  # prior IS reaches ~3 of 500 here
    assert abs(mean - 7.25) < 4 * 0.9128709 / math.sqrt(ess), done.stdout
    wrong = ppx_cli(*args.split(), cwd=tmp_path)
    assert wrong.returncode != 0 and "--engine ic needs one" in wrong.stderr


def test_train_refuses_what_it_cannot_use(tmp_path):
    done = ppx_cli("train", "--simulator", "gaussian", cwd=tmp_path)
    assert done.returncode != 0 and "name the observations with --observe-name" in done.stderr
    done = ppx_cli("train", "--dataset", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode != 0 and "nowhere" in done.stderr
    done = ppx_cli("train", cwd=tmp_path)
    assert done.returncode != 0 and "give --simulator/--address" in done.stderr


@pytest.mark.slow  # ~10 s; Ctrl-C of the CLI keeps its default-tier tests above
def test_ctrl_c_during_a_rate_fit_says_so_in_one_line(tmp_path):
    args = "grad fit --network birth_death --true-rate k=10 --init k=5 --times 1,2 --steps 100000"
    code, out, err = interrupted(args, "fit", tmp_path)
    assert code == 130, out + err
    assert out.strip() == "interrupted: the fit stopped before its last step; nothing was saved"
    assert "Traceback" not in err
