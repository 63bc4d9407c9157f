"""The soak script, ``benchmarks/soak.py``, with tiny counts: kills cost no trace, nothing leaks.

The script itself runs as a subprocess, as a user runs it: a spawned Python
gaussian (and the C++ one where the toolchain is present) is killed with
SIGKILL at random moments; every requested run must still end as a complete
trace, and the engine's descriptors and child processes must stay flat.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


@pytest.mark.slow  # 15-35 s: each Python simulator restart imports torch
def test_runs_survive_simulator_kills_without_leaks(tmp_path):
    figures = tmp_path / "soak.json"
    argv = ["--runs", "300", "--kills", "3", "--seed", "1", "--json", str(figures)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=280
    )
    report = json.loads(figures.read_text())
    assert report["soaks"], done.stdout
    for soak in report["soaks"]:
        start, end, before, closed = (soak[k] for k in ("start", "end", "before", "closed"))
        assert soak["completed"] == 300 and soak["lost"] == 0, soak["errors"][:3]
        assert soak["kills"] == 3 and soak["restarts"] >= 1
        assert end["children"] == start["children"] == 1 and closed["children"] == 0
        assert end["fds"] - start["fds"] <= 4 and closed["fds"] - before["fds"] <= 4
    assert done.returncode == 0 and report["ok"], done.stdout + done.stderr
