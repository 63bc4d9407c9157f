"""Drive a served PPX simulator with pyprob 1.5.0's own engine (``pyprob.RemoteModel``).

This script is NOT part of the ppx package and must not import it: it runs with the
python of the separate pyprob venv (``bash .ci/setup-pyprob-venv.sh`` prints that
python's path; the tests find it through ``PPX_PYPROB_PYTHON``)::

    $PPX_PYPROB_PYTHON tests/pyprob_driver.py --address tcp://127.0.0.1:5555 \\
        --mode prior --num-traces 2000 --seed 1
    $PPX_PYPROB_PYTHON tests/pyprob_driver.py --address tcp://127.0.0.1:5555 \\
        --mode posterior --num-traces 5000 --observe obs0=8 --observe obs1=9 --seed 1
    $PPX_PYPROB_PYTHON tests/pyprob_driver.py --address tcp://127.0.0.1:5555 \\
        --mode rmh --num-traces 5000 --burn-in 500 --observe obs0=8 --observe obs1=9

Output contract
---------------
stdout carries exactly ONE line: a JSON object (the last line written to stdout; the
caller can take ``stdout.strip().splitlines()[-1]``). Everything pyprob prints (its
"ppx (Python): ..." connection banner, progress bars) and all warnings go to stderr:
file descriptor 1 is redirected to stderr for the whole run and the JSON is written to
a saved copy of the original stdout.

On success (exit code 0)::

    {"ok": true, "mode": "prior"|"posterior"|"rmh", "num_traces": N, "latent": "mu",
     "mu_mean": float, "mu_std": float,          # keys are f"{latent}_mean"/f"{latent}_std"
     "ess": float,                               # effective sample size (N for prior)
     "log_evidence": float|null,                 # posterior: log mean importance weight
     "result_mean": float|null,                  # mean of the RunResult values (unweighted)
     "addresses": [...],   # pyprob's full addresses of the first trace's variables, in
                           # order, e.g. "mu__Normal__1" (address + "__" + distribution
                           # suffix + "__" + 1-based instance)
     "names": [...],       # the matching variable names (null when the simulator sent "")
     "variables": [{"address", "address_base", "name", "instance", "control",
                    "observed", "value", "distribution"}, ...],   # first trace
     "model_name": "<model> running on <system>",  # from HandshakeResult
     "pyprob_version": "1.5.0", "seed": S}

``--mode rmh`` runs pyprob's RANDOM_WALK_METROPOLIS_HASTINGS (one chain of N kernel
steps, each one run of the simulator; pyprob mixes a Gaussian random walk around the
current value with a fresh prior draw, half and half, at the resampled Normal site) and
adds to the object above::

     "seconds": float,             # wall time of model.posterior(...) alone (no imports,
                                   # no connection/handshake; includes the initial trace)
     "traces_per_second": float,   # N / seconds
     "acceptance": float,          # pyprob's num_traces_accepted / N
     "burn_in": B                  # --burn-in: the first B traces are left out of
                                   # mu_mean/mu_std (but not out of the timing)

In rmh mode the chain's traces are equally weighted: mu_mean/mu_std are the mean and
(population) standard deviation of the latent over traces B..N-1, and ess is pyprob's
importance-sampling ESS of those equal weights (= N - B), NOT an autocorrelation ESS;
log_evidence is null.

mu_mean/mu_std are pyprob's own ``Empirical.mean``/``Empirical.stddev`` of
``trace.named_variables[latent].value`` over the (weighted, for posterior) traces, i.e.
``posterior.map(lambda t: t.named_variables['mu'].value)``; ess is
``Empirical.effective_sample_size``.

On failure (exit code 2: bad arguments/model; 3: the simulator did not answer within
--timeout seconds) stdout carries ``{"ok": false, "error": "..."}`` and stderr the
traceback.

Notes on pyprob 1.5.0's RemoteModel (see pyprob/remote.py, pyprob/state.py):
observations given with --observe are matched BY NAME against the ``name`` of the
simulator's Observe (or Sample) messages and override any value the simulator sent;
pyprob's REQ socket has no receive timeout, so this script installs one through the
default socket options of ``zmq.Context.instance()`` (the context pyprob uses).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback

# --- keep stdout clean: fd 1 -> stderr, JSON goes to a saved copy of the real stdout ---
_REAL_STDOUT_FD = os.dup(1)
sys.stdout.flush()
os.dup2(2, 1)
sys.stdout = sys.stderr


def _emit(obj: dict) -> None:
    line = json.dumps(obj, sort_keys=True) + "\n"
    os.write(_REAL_STDOUT_FD, line.encode("utf-8"))


def _parse_observe(items: list[str]) -> dict[str, list[float] | float]:
    observe: dict[str, list[float] | float] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--observe expects NAME=VALUE[,VALUE...], got {item!r}")
        name, raw = item.split("=", 1)
        values = [float(v) for v in raw.split(",") if v.strip() != ""]
        if not name or not values:
            raise ValueError(f"--observe expects NAME=VALUE[,VALUE...], got {item!r}")
        observe[name] = values[0] if len(values) == 1 else values
    return observe


def _to_jsonable(value):
    if value is None:
        return None
    try:
        import torch

        if torch.is_tensor(value):
            value = value.detach().cpu().double()
            return value.item() if value.numel() == 1 else value.tolist()
    except Exception:  # pragma: no cover - best effort only
        pass
    if isinstance(value, (int, float, str, bool)):
        return value
    return repr(value)


def _describe_trace(trace) -> list[dict]:
    out = []
    for v in trace.variables:
        out.append(
            {
                "address": v.address,
                "address_base": v.address_base,
                "name": v.name,
                "instance": v.instance,
                "control": bool(v.control),
                "observed": bool(v.observed),
                "tagged": bool(getattr(v, "tagged", False)),
                "value": _to_jsonable(v.value),
                "distribution": None if v.distribution is None else repr(v.distribution),
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="ZeroMQ address of the served simulator")
    parser.add_argument("--num-traces", type=int, default=1000)
    parser.add_argument(
        "--observe",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="observed value for the variable named NAME (repeatable; VALUE may be a1,a2,...)",
    )
    parser.add_argument("--mode", choices=["prior", "posterior", "rmh"], default="prior")
    parser.add_argument(
        "--burn-in",
        type=int,
        default=0,
        help="rmh: leading traces left out of the latent's mean/std (default 0)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latent", default="mu", help="name of the latent to summarise")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for each reply of the simulator before giving up (exit 3)",
    )
    args = parser.parse_args(argv)

    try:
        import zmq

        # pyprob's ZMQRequester uses zmq.Context.instance() and sets no timeouts
        # (pyprob/remote.py:39-43): give every socket made from it a receive/send timeout.
        ctx = zmq.Context.instance()
        timeout_ms = max(1, int(args.timeout * 1000))
        ctx.setsockopt(zmq.RCVTIMEO, timeout_ms)
        ctx.setsockopt(zmq.SNDTIMEO, timeout_ms)

        import pyprob
        import torch
        from pyprob import util as pyprob_util

        pyprob.set_verbosity(0)  # no progress bars
        pyprob.seed(args.seed)  # seeds random, numpy and torch (pyprob/util.py:88)

        observe = _parse_observe(args.observe)
        observe_t = {k: pyprob_util.to_tensor(v) for k, v in observe.items()}
        if args.num_traces < 1:
            raise ValueError("--num-traces must be >= 1")
        if not 0 <= args.burn_in < args.num_traces:
            raise ValueError("--burn-in must be >= 0 and < --num-traces")
        if args.mode == "prior" and observe:
            print("pyprob_driver: --observe is ignored in prior mode", file=sys.stderr)

        model = pyprob.RemoteModel(server_address=args.address)
        timing = {}
        try:
            if args.mode == "prior":
                traces = model.prior(num_traces=args.num_traces)
            elif args.mode == "rmh":
                started = time.perf_counter()
                traces = model.posterior(
                    num_traces=args.num_traces,
                    inference_engine=pyprob.InferenceEngine.RANDOM_WALK_METROPOLIS_HASTINGS,
                    observe=observe_t,
                )
                seconds = time.perf_counter() - started
                accepted = None  # pyprob's metadata: an OrderedDict {"0": {...}, ...}
                for entry in getattr(traces, "_metadata", {}).values():
                    if isinstance(entry, dict) and "num_traces_accepted" in entry:
                        accepted = entry["num_traces_accepted"]
                timing = {
                    "seconds": seconds,
                    "traces_per_second": args.num_traces / seconds,
                    "acceptance": None if accepted is None else accepted / args.num_traces,
                    "burn_in": args.burn_in,
                }
            else:
                traces = model.posterior(
                    num_traces=args.num_traces,
                    inference_engine=pyprob.InferenceEngine.IMPORTANCE_SAMPLING,
                    observe=observe_t,
                )
            first = traces._get_value(0)
            if args.latent not in first.named_variables:
                raise KeyError(
                    f"latent {args.latent!r} not among the named variables of the first "
                    f"trace: {sorted(first.named_variables)}"
                )
            latent = traces.map(lambda t: t.named_variables[args.latent].value)
            if args.mode == "rmh":  # equal weights; drop the burn-in
                kept = torch.stack(
                    [
                        torch.as_tensor(latent._get_value(i)).double().reshape(-1)[0]
                        for i in range(args.burn_in, latent.length)
                    ]
                )
                mean = float(kept.mean())
                std = float(kept.std(unbiased=False))
                ess = float(len(kept))
            else:
                mean = float(torch.as_tensor(latent.mean).double().reshape(-1)[0])
                std = float(torch.as_tensor(latent.stddev).double().reshape(-1)[0])
                ess = float(traces.effective_sample_size)
            results = [traces._get_value(i).result for i in range(traces.length)]
            result_mean = None
            if all(r is not None for r in results):
                firsts = [r.double().reshape(-1)[0] for r in results]
                result_mean = float(torch.stack(firsts).mean())
            log_evidence = None
            if args.mode == "posterior":
                lw = torch.as_tensor(traces.log_weights, dtype=torch.float64)
                log_evidence = float(torch.logsumexp(lw, 0) - math.log(len(lw)))
            out = {
                "ok": True,
                "mode": args.mode,
                "num_traces": int(traces.length),
                "latent": args.latent,
                f"{args.latent}_mean": mean,
                f"{args.latent}_std": std,
                "ess": ess,
                "log_evidence": log_evidence,
                "result_mean": result_mean,
                "addresses": [v.address for v in first.variables],
                "names": [v.name for v in first.variables],
                "variables": _describe_trace(first),
                "observe": observe if args.mode != "prior" else {},
                "model_name": model.name,
                "pyprob_version": pyprob.__version__,
                "seed": args.seed,
                **timing,
            }
        finally:
            model.close()
    except Exception as exc:  # report every failure as JSON
        traceback.print_exc(file=sys.stderr)
        timed_out = type(exc).__name__ == "Again" or "Resource temporarily unavailable" in str(exc)
        _emit(
            {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "timed_out": timed_out,
            }
        )
        return 3 if timed_out else 2
    _emit(out)
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stderr.flush()
    # Skip interpreter teardown: pyprob's __del__ hooks would touch an already
    # terminated zmq context, and torch's teardown is slow.
    os._exit(rc)
