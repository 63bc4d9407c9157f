"""The coverage-guided decoder fuzzer, ``fuzz/decode_fuzz.py``, runs a minute without a finding.

A bounded CI run of the atheris (libFuzzer) target in a subprocess: seeded
with valid messages of every type, it mutates them for 60 seconds and must
exit 0 (a finding exits 1 and writes the input to ``crash-*``, quoted below).
Skipped where atheris is not installed (``pip install -e ".[fuzz]"``).
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[1] / "fuzz" / "decode_fuzz.py"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason='atheris is not installed (pip install -e ".[fuzz]")',
)
def test_the_decoder_fuzzer_runs_a_minute_without_a_finding(tmp_path):
    corpus = tmp_path / "corpus"
    done = subprocess.run(
        [
            sys.executable,
            str(TARGET),
            "-max_total_time=60",
            "-timeout=60",  # seconds for one input: a decode that slow is a finding too
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=280,
    )
    findings = {path.name: path.read_bytes() for path in tmp_path.glob("crash-*")}
    assert done.returncode == 0, f"{findings}\n{done.stderr[-6000:]}"
    seeded = re.search(r"seeded .* with (\d+) messages", done.stderr)
    assert seeded and "Done" in done.stderr, done.stderr[-6000:]
    assert len(list(corpus.iterdir())) > int(seeded[1])  # libFuzzer kept inputs of new coverage
