"""The posterior object of PPX: weighted records, with statistics, ArviZ export and files."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ppx.inference.hdf5 import read_records, write_records
from ppx.inference.ic.prior_records import read_prior
from ppx.inference.metadata import attribute, merge_metadata, to_json
from ppx.inference.records import Record, Value, record_keys, stack, to_numpy
from ppx.inference.statistics import (
    chain_rows,
    import_arviz,
    logsumexp,
    quiet_log,
    weighted_quantile,
)
from ppx.provenance import Provenance, collect

if TYPE_CHECKING:
    import pandas
    from arviz import InferenceData

__all__ = ["Empirical"]


class Empirical:
    """Records with (log) weights and chain ids: equal weights and one chain when none are given.

    A record is a :class:`ppx.Trace` or a mapping from name (or address) to
    value (float, numpy array or torch tensor): anything with ``record[key]``
    and ``key in record``. Importance sampling gives weighted traces; MCMC
    engines give equally weighted dict records with one chain id each.

    Arguments:
        records: the records (kept, as given, in :attr:`traces`).
        log_weights: one unnormalised log weight per record.
        chain: one MCMC chain id per record (default: all in chain 0).
        metadata: JSON-able facts (engine, model, observations, acceptance
            rates...) kept in their JSON form (numpy values become numbers and
            lists, tuples become lists) and saved with the posterior.
        provenance: what produced the records (seed, simulator, versions); the
            engines set it, :meth:`save` stores it.

    Attributes:
        traces: the records, Trace objects or dicts (dicts after :meth:`load`).
        log_weights: float64 array of the log weights.
        weights: the normalised weights.
        chain: int64 array of the chain ids.
        metadata: the metadata dict.
        provenance: the :class:`~ppx.provenance.Provenance` record, or ``None``.

    Example:
        >>> post = ppx.inference.importance_sampling(model, observe={"obs0": 8.0}, num_traces=1000)
        >>> post.mean("mu"), post.quantile("mu", [0.05, 0.95]), post.ess
        >>> post.save("post.h5"); Empirical.load("post.h5").summary()
    """

    def __init__(
        self,
        records: Sequence[Record],
        log_weights: Sequence[float] | np.ndarray | None = None,
        chain: Sequence[int] | np.ndarray | None = None,
        metadata: Mapping[str, object] | None = None,
        provenance: Provenance | None = None,
    ) -> None:
        if len(records) == 0:
            raise ValueError("an Empirical needs at least one record")
        self.traces = list(records)
        self.log_weights = _per_record(log_weights, len(self.traces), "log weights", np.float64)
        self.chain = _per_record(chain, len(self.traces), "chain ids", np.int64)
        self.metadata: dict[str, Any] = json.loads(to_json(metadata or {}))  # JSON values
        self.provenance = provenance
        if not np.isfinite(self.log_weights).any():
            raise ValueError(
                "every trace has zero weight (log weight -inf or NaN): the observations are "
                "impossible under every trace; check the observed values and their names"
            )
        finite = np.where(np.isnan(self.log_weights), -np.inf, self.log_weights)
        self.weights = np.exp(finite - logsumexp(finite))

    def __len__(self) -> int:
        return len(self.traces)

    @property
    def ess(self) -> float:
        """Kish's effective sample size, ``1 / sum(w_i^2)`` of the normalised weights.

        It does not see autocorrelation: for MCMC use :meth:`summary` (``ess_bulk``).
        """
        return float(1.0 / np.sum(self.weights**2))

    @property
    def log_evidence(self) -> float:
        """log of the mean unnormalised weight: log p(observations) for importance sampling."""
        finite = np.where(np.isnan(self.log_weights), -np.inf, self.log_weights)
        return float(logsumexp(finite) - np.log(len(finite)))

    @property
    def is_weighted(self) -> bool:
        """The weights differ (importance sampling); False for equally weighted records."""
        return not bool(np.all(self.weights == self.weights[0]))

    @property
    def num_chains(self) -> int:
        """Number of distinct chain ids."""
        return len(np.unique(self.chain))

    def keys(self) -> list[str]:
        """Keys present in every record, in the first record's order.

        For :class:`ppx.Trace` records: the names (addresses where unnamed) of
        the latent draws, then the tags.
        """
        common = set.intersection(*(set(record_keys(r)) for r in self.traces))
        return [key for key in record_keys(self.traces[0]) if key in common]

    def values(self, name: str) -> np.ndarray:
        """The value of ``name`` (draw name or address, tag, dict key) in every record, stacked.

        Returns:
            A float64 array of shape ``(len(self), *value_shape)``.

        Raises:
            KeyError: some record lacks ``name`` (use :meth:`expectation` with a
                function that handles absence for trans-dimensional programs).
        """
        return stack(self._column(name), name).astype(np.float64)

    def expectation(self, fn: Callable[[Record], Value | Sequence[float]]) -> np.ndarray:
        """Weighted mean of ``fn(record)``."""
        values = np.stack([to_numpy(fn(record)) for record in self.traces]).astype(np.float64)
        return np.tensordot(self.weights, values, axes=1)

    def mean(self, name: str) -> np.ndarray:
        """Posterior mean of ``name``."""
        return np.tensordot(self.weights, self.values(name), axes=1)

    def variance(self, name: str) -> np.ndarray:
        """Posterior variance of ``name``."""
        values = self.values(name)
        centred = values - np.tensordot(self.weights, values, axes=1)
        return np.tensordot(self.weights, centred**2, axes=1)

    def std(self, name: str) -> np.ndarray:
        """Posterior standard deviation of ``name``."""
        return np.sqrt(self.variance(name))

    def quantile(self, name: str, q: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Posterior quantiles of ``name``, elementwise for vector values.

        Equally weighted records: exactly ``numpy.quantile(values, q, axis=0)``
        (its default ``'linear'`` interpolation). Weighted records: the inverse
        of the weighted CDF, the smallest value ``x`` among records of positive
        weight with ``sum(weights[values <= x]) >= q`` (ties of ``q`` with the
        CDF are resolved to within 1e-12), which is ``'inverted_cdf'`` of numpy.

        Arguments:
            name: draw name or address, tag or key.
            q: probability or array of probabilities in [0, 1].

        Returns:
            An array of shape ``(*q.shape, *value_shape)``.
        """
        q = np.asarray(q, dtype=np.float64)
        if np.any((q < 0) | (q > 1)) or np.isnan(q).any():
            raise ValueError(f"quantile probabilities must lie in [0, 1], got {q}")
        values = self.values(name)
        if not self.is_weighted:
            return np.asarray(np.quantile(values, q, axis=0))
        keep = self.weights > 0
        columns = values[keep].reshape(int(keep.sum()), -1)
        result = weighted_quantile(columns, self.weights[keep], q.reshape(-1))
        return result.reshape(q.shape + values.shape[1:])

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> Empirical:
        """Resample records by weight (multinomial, with replacement).

        Returns:
            An equally weighted :class:`Empirical` of ``num_samples`` records, in
            one chain, with the same metadata.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {num_samples}")
        weights = torch.from_numpy(self.weights)
        index = torch.multinomial(weights, num_samples, replacement=True, generator=generator)
        return Empirical([self.traces[i] for i in index.tolist()], metadata=self.metadata)

    def marginal(self, name: str) -> Empirical:
        """The posterior of ``name`` alone: records ``{name: value}``, same weights and chains."""
        records = [{name: value} for value in self._column(name)]
        return Empirical(records, self.log_weights, self.chain, self.metadata)

    def to_arviz(
        self, names: Sequence[str] | None = None, *, generator: torch.Generator | None = None
    ) -> InferenceData:
        """The posterior as ``arviz.InferenceData``.

        Equally weighted records are split by chain id into a posterior group of
        shape ``(chains, draws, *value_shape)`` per name, in record order within
        each chain; chains of unequal length are cut to the shortest (with a
        warning). Weighted records are first resampled (:meth:`sample`, with
        ``generator``) to ``len(self)`` equally weighted draws in one chain.
        The metadata become attributes of the data and of its posterior group
        (values other than str, int, float and bool as JSON strings).

        Arguments:
            names: keys to include (default: :meth:`keys`).
            generator: random generator for the resampling of weighted records.
        """
        arviz = import_arviz()
        names = self.keys() if names is None else list(names)
        source = self.sample(len(self), generator) if self.is_weighted else self
        rows = chain_rows(source.chain)
        posterior = {name: source.values(name)[rows] for name in names}
        attrs = {"inference_library": "ppx"}
        attrs |= {key: attribute(value) for key, value in self.metadata.items()}
        return arviz.from_dict(posterior=posterior, attrs=attrs, posterior_attrs=dict(attrs))

    def summary(self, names: Sequence[str] | None = None, **kwargs: object) -> pandas.DataFrame:
        """``arviz.summary`` (mean, sd, hdi, mcse, ess_bulk, ess_tail, r_hat) as a DataFrame.

        Arguments:
            names: keys to summarise (default: the keys with scalar values).
            kwargs: passed to ``arviz.summary`` (``hdi_prob``, ``kind``...).
        """
        if names is None:
            names = [key for key in self.keys() if np.ndim(to_numpy(self.traces[0][key])) == 0]
            if not names:
                raise ValueError(f"no key with scalar values to summarise; keys: {self.keys()}")
        arviz = import_arviz()
        data = self.to_arviz(names)
        one_chain = self.is_weighted or self.num_chains == 1  # r_hat is NaN: no need to warn
        logger = getattr(arviz, "_log", logging.getLogger("arviz"))
        with (
            quiet_log(logger, "Shape validation failed") if one_chain else contextlib.nullcontext()
        ):
            return arviz.summary(data, **kwargs)

    def save(self, path: str | Path, provenance: Provenance | None = None) -> None:
        """Write the posterior to an HDF5 file (layout: :mod:`ppx.inference.hdf5`).

        Arguments:
            path: the file (overwritten).
            provenance: the record to store (default: :attr:`provenance`, else one
                of this process with no seed or simulator known).

        Raises:
            TypeError: a value is not numeric.
        """
        record = provenance or self.provenance or collect()
        write_records(path, self.traces, self.log_weights, self.chain, self.metadata, record)

    @classmethod
    def load(cls, path: str | Path) -> Empirical:
        """Read a posterior file written by :meth:`save`, or a trace dataset folder.

        A trace dataset (``ppx prior --out``, :func:`~ppx.inference.ic.generate_dataset`)
        gives its traces as equally weighted records in one chain: the prior,
        with its controlled latents and numeric tags keyed as :meth:`keys` keys
        traces, and metadata ``engine="prior"``, ``model``, ``num_traces`` and
        ``origin`` (:func:`~ppx.inference.ic.prior_records.read_prior`, which
        says what loading costs: the records stay in memory, the observations
        are not read). The records are dicts of numpy values.

        Raises:
            FileNotFoundError: there is no such file or folder.
            ValueError: ``path`` is neither a PPX posterior file nor a trace dataset.
        """
        if Path(path).is_dir():
            records, metadata = read_prior(Path(path))
            return cls(records, metadata=metadata)
        stored = read_records(path)
        return cls(
            stored.records, stored.log_weights, stored.chain, stored.metadata, stored.provenance
        )

    @classmethod
    def merge(cls, posteriors: Iterable[Empirical], *, renumber_chains: bool = False) -> Empirical:
        """Concatenate posteriors (chains of one run, batches of importance sampling).

        Log weights are kept as they are (batches must share a weight scale).
        Metadata entries equal in every posterior are kept; the others become a
        list of the per-posterior values (``None`` where absent).

        Arguments:
            posteriors: the posteriors, in order.
            renumber_chains: give each posterior's chains new ids after those of
                the posteriors before it (default: keep the chain ids).
        """
        posteriors = list(posteriors)
        if not posteriors:
            raise ValueError("merge needs at least one posterior")
        chains, offset = [], 0
        for posterior in posteriors:
            if renumber_chains:
                dense = np.unique(posterior.chain, return_inverse=True)[1].reshape(-1)
                chains.append(dense + offset)
                offset += posterior.num_chains
            else:
                chains.append(posterior.chain)
        return cls(
            [record for posterior in posteriors for record in posterior.traces],
            np.concatenate([posterior.log_weights for posterior in posteriors]),
            np.concatenate(chains),
            merge_metadata([posterior.metadata for posterior in posteriors]),
        )

    def concat(
        self, others: Empirical | Iterable[Empirical], *, renumber_chains: bool = False
    ) -> Empirical:
        """This posterior followed by ``others`` (see :meth:`merge`)."""
        others = [others] if isinstance(others, Empirical) else list(others)
        return Empirical.merge([self, *others], renumber_chains=renumber_chains)

    def __repr__(self) -> str:
        chains = "1 chain" if self.num_chains == 1 else f"{self.num_chains} chains"
        return f"Empirical({len(self)} records, ESS {self.ess:.1f}, {chains})"

    def _column(self, name: str) -> list[Value]:
        try:
            return [record[name] for record in self.traces]
        except KeyError:
            keys = sorted(record_keys(self.traces[0]))
            raise KeyError(
                f"{name!r} is not a draw or tag of every trace; keys of the first record: {keys}"
            ) from None


def _per_record(
    values: Sequence[float] | np.ndarray | None,
    size: int,
    what: str,
    dtype: type[np.float64] | type[np.int64],
) -> np.ndarray:
    if values is None:
        return np.zeros(size, dtype=dtype)
    array = np.asarray(values)
    if array.shape != (size,):
        raise ValueError(f"{size} records but {array.size} {what}")
    if dtype is np.int64 and not np.array_equal(array, array.astype(np.int64)):
        raise ValueError(f"{what} must be integers, got {array[:5]}...")
    return array.astype(dtype)
