"""Write your own simulator with ``ppx.sample/observe/tag``, then run it locally and served.

The simulator is a coin with an unknown bias: a ``Beta(2, 2)`` prior on the
probability of heads, and one ``Bernoulli`` observe per flip. The flips are supplied
by the inference engine, by name (``flip0``, ``flip1``, ...), so the simulator code
never sees the data. Its exact posterior is ``Beta(2 + heads, 2 + tails)``.

The same function runs two ways, which give the same posterior within Monte Carlo
error:

1. in this process, with ``ppx.LocalModel(coin)``;
2. served over PPX from a background thread (``ppx.serve``) and driven through a
   ``ppx.RemoteModel``, exactly as if it ran in another process or language.

Run it::

    python examples/write_your_own_simulator.py --num-traces 5000
"""

from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import threading

import torch
from torch.distributions import Bernoulli, Beta

import ppx

FLIPS = [1, 1, 0, 1, 1, 1, 0, 1, 1, 1]  # 8 heads, 2 tails
PRIOR = (2.0, 2.0)


# --- the simulator: ordinary Python plus ppx.sample / ppx.observe / ppx.tag ---------
def coin() -> torch.Tensor:
    """Flip a coin of unknown bias ``len(FLIPS)`` times."""
    bias = ppx.sample(Beta(*PRIOR), name="bias")  # a latent the engine controls
    for i in range(len(FLIPS)):
        ppx.observe(Bernoulli(bias), name=f"flip{i}")  # the engine supplies the flip
    ppx.tag((bias > 0.5).double(), name="favours_heads")  # a derived value, recorded
    return bias


# -------------------------------------------------------------------------------------
def summarise(label: str, posterior) -> tuple[float, float]:
    """Print and return the posterior mean of the bias and its MC standard error."""
    mean, std = float(posterior.mean("bias")), float(posterior.std("bias"))
    error = std / math.sqrt(posterior.ess)
    heads = float(posterior.mean("favours_heads"))
    print(
        f"{label:<7} mean of bias {mean:.4f} +- {error:.4f} (MC error), std {std:.4f}, "
        f"P(bias > 0.5) {heads:.3f}, ESS {posterior.ess:.1f}"
    )
    return mean, error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-traces", type=int, default=5000, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="default: %(default)s")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    data = {f"flip{i}": float(flip) for i, flip in enumerate(FLIPS)}

    heads, tails = sum(FLIPS), len(FLIPS) - sum(FLIPS)
    a, b = PRIOR[0] + heads, PRIOR[1] + tails
    exact_mean, exact_std = a / (a + b), math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
    print(f"flips: {FLIPS} ({heads} heads, {tails} tails)")
    print(f"exact   mean of bias {exact_mean:.4f}, std {exact_std:.4f} (Beta({a:g}, {b:g}))")

    # 1. In process: the fast path for developing and testing a simulator.
    local = ppx.LocalModel(coin, name="coin")
    posterior = ppx.inference.importance_sampling(local, data, num_traces=args.num_traces)
    local_mean, local_error = summarise("local", posterior)

    # 2. Served over PPX from a background thread, driven by a RemoteModel.
    folder = tempfile.mkdtemp(prefix="ppx-coin-")
    address = f"ipc://{folder}/coin.sock"
    stop = threading.Event()
    server = threading.Thread(
        target=ppx.serve, args=(coin, address), kwargs=dict(model_name="coin", stop=stop)
    )
    server.start()
    try:
        with ppx.RemoteModel(address) as remote:
            posterior = ppx.inference.importance_sampling(remote, data, args.num_traces)
            remote_mean, remote_error = summarise("remote", posterior)
    finally:
        stop.set()  # the server checks the event every 200 ms
        server.join()
        shutil.rmtree(folder, ignore_errors=True)

    difference = local_mean - remote_mean
    combined = math.hypot(local_error, remote_error)
    print(
        f"local - remote difference: {difference:+.4f} = "
        f"{difference / combined:+.2f} combined MC errors"
    )


if __name__ == "__main__":
    main()
