"""RMH MCMC chains on Slurm: one Dask task a chain, each worker spawns its own simulator.

``open_client(hpc="slurm", ...)`` starts a Dask scheduler here (on a login node)
and submits ``--jobs`` Slurm jobs running Dask workers. Each chain is one task:
the worker that runs it starts the Gaussian reference simulator as a local
process, runs ``--num-steps`` RMH steps, and returns the values of ``mu``. The
exact posterior mean of ``mu`` is 7.25.

Preview the batch script without submitting anything::

    python examples/hpc/slurm_rmh.py --dry-run --cores 8 --memory 16GB --queue short

Run it (on a machine where ``sbatch`` works and this environment is on a
shared filesystem); ``--local`` uses a local cluster instead of Slurm::

    python examples/hpc/slurm_rmh.py --jobs 2 --cores 8 --memory 16GB --chains 16

The ``ppx`` command line will do the same with
``ppx infer --engine rmh --simulator gaussian --chains 16 --hpc slurm``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ppx.engine.model_spec import ModelSpec
from ppx.inference import rmh
from ppx.inference.cluster import job_script, open_client

OBSERVE = {"obs0": 8.0, "obs1": 9.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the job script and exit")
    parser.add_argument("--local", action="store_true", help="use a local cluster, not Slurm")
    parser.add_argument("--jobs", type=int, default=1, help="Slurm jobs to submit")
    parser.add_argument("--cores", type=int, default=4, help="cores a job")
    parser.add_argument("--memory", default="8GB", help="memory a job")
    parser.add_argument("--walltime", default="01:00:00", help="wall-clock limit a job")
    parser.add_argument("--queue", default=None, help="Slurm partition")
    parser.add_argument("--account", default=None, help="Slurm account")
    parser.add_argument("--chains", type=int, default=4, help="independent chains")
    parser.add_argument("--num-steps", type=int, default=2000, help="samples kept a chain")
    parser.add_argument("--out", default=None, help="stream the posterior to this HDF5 file")
    return parser.parse_args(argv)


def slurm_options(args: argparse.Namespace) -> dict[str, Any]:
    """SLURMCluster keywords from the options; unset ones come from jobqueue.yaml."""
    options = {"cores": args.cores, "memory": args.memory, "walltime": args.walltime}
    options.update({k: v for k, v in (("queue", args.queue), ("account", args.account)) if v})
    return options


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.dry_run:
        print(job_script("slurm", **slurm_options(args)))
        return
    hpc = None if args.local else "slurm"
    with open_client(
        hpc=hpc, hpc_jobs=args.jobs, hpc_options=slurm_options(args) if hpc else None
    ) as client:
        print(f"scheduler {client.scheduler.address}; waiting for the first worker...")
        client.wait_for_workers(1)
        # every worker spawns and owns its own simulator process from this spec
        spec = ModelSpec("spawn", [sys.executable, "-m", "ppx.simulators.gaussian"])
        posterior = rmh(
            spec,
            OBSERVE,
            args.num_steps,
            chains=args.chains,
            client=client,
            proposal="random_walk",
            out=args.out,
        )
    print(posterior.summary())
    print(f"posterior mean of mu: {float(posterior.mean('mu')):.3f} (exact 7.25)")


if __name__ == "__main__":  # required: Dask starts local workers with "spawn"
    main()
