#!/usr/bin/env bash
# Create (or reuse) a separate virtual environment holding pyprob 1.5.0, the
# reference engine that the interoperability tests drive against our served
# simulators (tests/pyprob_driver.py runs inside it; the tests find it through
# PPX_PYPROB_PYTHON).
#
#   bash .ci/setup-pyprob-venv.sh            # venv at ~/.cache/ppx/pyprob-venv
#   PPX_PYPROB_VENV=/some/dir bash .ci/setup-pyprob-venv.sh
#
# pyprob 1.5.0 pins old dependencies (flatbuffers==2.0, termcolor==1.1.0, ...),
# so it is installed with --no-deps, next to exactly what `import pyprob` and
# pyprob.RemoteModel need on Python 3.11:
#   torch==2.13.0 (CPU wheel from the local wheel cache), numpy, pyzmq,
#   flatbuffers (25.x works: pyprob only uses Builder/EndVector()/Table),
#   termcolor==1.1.0, pydotplus, sqlitedict, pyyaml, matplotlib (imported by
#   pyprob.distributions at import time) and scikit-learn (pyprob/distributions/
#   empirical.py does `from sklearn import mixture` at import time).
#
# Idempotent: an existing venv whose python can already `import pyprob` at
# version 1.5.0 (together with zmq and flatbuffers) is reused untouched.
#
# On success the LAST line of stdout is the absolute path of the venv's python.
# On failure (e.g. the package index lacks something) it exits non-zero with a
# message on stderr; callers (CI) decide whether that is fatal or a skip.
set -uo pipefail

VENV="${PPX_PYPROB_VENV:-$HOME/.cache/ppx/pyprob-venv}"
PY="$VENV/bin/python"
BASE_PYTHON="${PPX_PYPROB_BASE_PYTHON:-python3}"

log() { echo "[setup-pyprob-venv] $*" >&2; }
fail() {
    log "ERROR: $*"
    log "pyprob 1.5.0 venv NOT available at $VENV; the pyprob interoperability tests cannot run."
    exit 1
}

check_import() {
    "$PY" - <<'EOF' >/dev/null 2>&1
import warnings
warnings.filterwarnings("ignore")
import zmq, flatbuffers, torch  # noqa: F401
import pyprob
assert pyprob.__version__ == "1.5.0", pyprob.__version__
assert hasattr(pyprob, "RemoteModel")
EOF
}

if [ -x "$PY" ] && check_import; then
    log "reusing existing venv $VENV"
    echo "$PY"
    exit 0
fi

if [ ! -x "$PY" ]; then
    log "creating venv $VENV"
    mkdir -p "$(dirname "$VENV")" || fail "cannot create $(dirname "$VENV")"
    "$BASE_PYTHON" -m venv "$VENV" || fail "'$BASE_PYTHON -m venv $VENV' failed"
fi

PIP=("$PY" -m pip install --quiet --disable-pip-version-check --no-input)

log "installing torch==2.13.0 (CPU) and runtime dependencies"
"${PIP[@]}" "torch==2.13.0" numpy "pyzmq>=19" "flatbuffers>=2.0" \
    pyyaml matplotlib scikit-learn "sqlitedict>=2.0.0" \
    || fail "pip could not install pyprob's runtime dependencies (torch==2.13.0, numpy, pyzmq, flatbuffers, pyyaml, matplotlib, scikit-learn, sqlitedict)"

log "installing pyprob==1.5.0 (no deps), termcolor==1.1.0, pydotplus"
# termcolor 1.1.0 and pydotplus are sdists: give them setuptools to build with.
"${PIP[@]}" setuptools wheel || fail "pip could not install setuptools/wheel"
"${PIP[@]}" --no-deps "pyprob==1.5.0" "termcolor==1.1.0" "pydotplus" \
    || fail "pip could not install pyprob==1.5.0 / termcolor==1.1.0 / pydotplus"
# pydotplus needs pyparsing at import time.
"${PIP[@]}" pyparsing || fail "pip could not install pyparsing"

if ! check_import; then
    log "import check output:"
    "$PY" -c "import pyprob, zmq, flatbuffers; print(pyprob.__version__)" >&2 || true
    fail "the venv was built but 'import pyprob' (1.5.0) still fails"
fi

log "pyprob 1.5.0 ready in $VENV"
echo "$PY"
