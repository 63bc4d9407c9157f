"""pyprob 1.5.0's in-process importance sampling and RMH on the Gaussian model, timed.

NOT part of ppx and must not import it: ``benchmarks/inprocess.py`` runs it with the
python of the pyprob venv (``PPX_PYPROB_PYTHON``)::

    $PPX_PYPROB_PYTHON benchmarks/_pyprob_inprocess.py --engine is --num-traces 20000
    $PPX_PYPROB_PYTHON benchmarks/_pyprob_inprocess.py --engine rmh --num-traces 20000
    $PPX_PYPROB_PYTHON benchmarks/_pyprob_inprocess.py --engine is --num-traces 100000 --memory

The model is pyprob's own ``GaussianWithUnknownMeanMarsaglia`` test model with the prior
drawn directly (``mu ~ Normal(1, sqrt 5)``, ``obs0, obs1 ~ Normal(mu, sqrt 2)``), written
as a ``pyprob.Model``: ``ppx.simulators.gaussian.model`` for pyprob. Only
``model.posterior(...)`` is timed (no imports, no model construction). stdout carries
one JSON line: ``{"engine", "num_traces", "seconds", "traces_per_second", "mu_mean",
"mu_std", "pyprob_version"}``, with ``--memory`` also ``rss_delta_bytes`` (resident set
growth while the posterior is held; the posterior is kept in memory, as pyprob does
without ``file_name``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", choices=["is", "rmh"], required=True)
    parser.add_argument("--num-traces", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", action="store_true", help="report the RSS growth")
    args = parser.parse_args()

    real_stdout = os.dup(1)
    os.dup2(2, 1)  # pyprob prints; keep stdout for the JSON line
    sys.stdout = sys.stderr

    import pyprob
    import torch
    from pyprob import InferenceEngine, Model
    from pyprob.distributions import Normal

    class GaussianWithUnknownMean(Model):
        def __init__(self) -> None:
            super().__init__(name="Gaussian with unknown mean")
            self.prior_mean, self.prior_std, self.likelihood_std = 1.0, math.sqrt(5), math.sqrt(2)

        def forward(self):  # noqa: ANN202 - pyprob's signature
            mu = pyprob.sample(Normal(self.prior_mean, self.prior_std), name="mu")
            likelihood = Normal(mu, self.likelihood_std)
            pyprob.observe(likelihood, name="obs0")
            pyprob.observe(likelihood, name="obs1")
            return mu

    pyprob.set_verbosity(0)
    pyprob.seed(args.seed)
    model = GaussianWithUnknownMean()
    engine = {
        "is": InferenceEngine.IMPORTANCE_SAMPLING,
        "rmh": InferenceEngine.RANDOM_WALK_METROPOLIS_HASTINGS,
    }[args.engine]
    observe = {"obs0": 8.0, "obs1": 9.0}
    model.posterior(num_traces=20, inference_engine=engine, observe=observe)  # warm-up
    rss = _rss_bytes()
    started = time.perf_counter()
    posterior = model.posterior(
        num_traces=args.num_traces, inference_engine=engine, observe=observe
    )
    seconds = time.perf_counter() - started
    out = {
        "engine": args.engine,
        "num_traces": args.num_traces,
        "seconds": seconds,
        "traces_per_second": args.num_traces / seconds,
        "pyprob_version": pyprob.__version__,
    }
    if args.memory:
        out["rss_delta_bytes"] = _rss_bytes() - rss
    mu = posterior.map(lambda trace: trace.named_variables["mu"].value)
    if args.engine == "is":
        out["mu_mean"] = float(torch.as_tensor(mu.mean).double())
        out["mu_std"] = float(torch.as_tensor(mu.stddev).double())
    else:
        kept = torch.stack([torch.as_tensor(mu._get_value(i)).double() for i in range(mu.length)])
        out["mu_mean"], out["mu_std"] = float(kept.mean()), float(kept.std(unbiased=False))
    os.write(real_stdout, (json.dumps(out) + "\n").encode())
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    os._exit(code)  # skip interpreter teardown (slow with torch)
