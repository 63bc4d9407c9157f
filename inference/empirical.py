"""Weighted empirical distributions over records: the posterior objects of PPX."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from ppx.trace import Trace

__all__ = ["Empirical"]

FORMAT = "ppx.Empirical"
FORMAT_VERSION = 1

Record = Trace | Mapping[str, Any]


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

    Attributes:
        traces: the records, Trace objects or dicts (dicts after :meth:`load`).
        log_weights: float64 array of the log weights.
        weights: the normalised weights.
        chain: int64 array of the chain ids.
        metadata: the metadata dict.

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
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if len(records) == 0:
            raise ValueError("an Empirical needs at least one record")
        self.traces = list(records)
        self.log_weights = _per_record(log_weights, len(self.traces), "log weights", np.float64)
        self.chain = _per_record(chain, len(self.traces), "chain ids", np.int64, fill=0)
        self.metadata: dict[str, Any] = json.loads(_to_json(metadata or {}))
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
        common = set.intersection(*(set(_record_keys(r)) for r in self.traces))
        return [key for key in _record_keys(self.traces[0]) if key in common]

    def values(self, name: str) -> np.ndarray:
        """The value of ``name`` (draw name or address, tag, dict key) in every record, stacked.

        Returns:
            A float64 array of shape ``(len(self), *value_shape)``.

        Raises:
            KeyError: some record lacks ``name`` (use :meth:`expectation` with a
                function that handles absence for trans-dimensional programs).
        """
        return _stack(self._column(name), name).astype(np.float64)

    def expectation(self, fn: Callable[[Any], Any]) -> np.ndarray:
        """Weighted mean of ``fn(record)``."""
        values = np.stack([_to_numpy(fn(record)) for record in self.traces]).astype(np.float64)
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
        result = _weighted_quantile(columns, self.weights[keep], q.reshape(-1))
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
    ) -> Any:
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
        arviz = _import_arviz()
        names = self.keys() if names is None else list(names)
        source = self.sample(len(self), generator) if self.is_weighted else self
        rows = source._chain_rows()
        posterior = {name: source.values(name)[rows] for name in names}
        attrs = {"inference_library": "ppx"}
        attrs |= {key: _attr(value) for key, value in self.metadata.items()}
        return arviz.from_dict(posterior=posterior, attrs=attrs, posterior_attrs=dict(attrs))

    def summary(self, names: Sequence[str] | None = None, **kwargs: Any) -> Any:
        """``arviz.summary`` (mean, sd, hdi, mcse, ess_bulk, ess_tail, r_hat) as a DataFrame.

        Arguments:
            names: keys to summarise (default: the keys with scalar values).
            kwargs: passed to ``arviz.summary`` (``hdi_prob``, ``kind``...).
        """
        if names is None:
            names = [key for key in self.keys() if np.ndim(_to_numpy(self.traces[0][key])) == 0]
            if not names:
                raise ValueError(f"no key with scalar values to summarise; keys: {self.keys()}")
        arviz = _import_arviz()
        data = self.to_arviz(names)
        one_chain = data.posterior.sizes["chain"] == 1  # r_hat is NaN: no need to warn
        logger = getattr(arviz, "_log", logging.getLogger("arviz"))
        with _quiet(logger, "Shape validation failed") if one_chain else contextlib.nullcontext():
            return arviz.summary(data, **kwargs)

    def save(self, path: str | Path) -> None:
        """Write the posterior to an HDF5 file (see :meth:`load`).

        Layout: attributes ``ppx_format``, ``format_version``, ``num_records``
        and ``metadata`` (a JSON string); datasets ``log_weights`` and ``chain``;
        ``values/<key>`` the stacked values of each key (``/`` in a key escaped
        as ``%2F``, the key itself in the dataset's ``key`` attribute); for a key
        that some records lack, ``present/<key>`` marks the records that have it
        and ``values/<key>`` holds only their values.
        """
        key_lists = [_record_keys(record) for record in self.traces]
        key_sets = [set(keys) for keys in key_lists]
        with h5py.File(path, "w") as file:
            file.attrs["ppx_format"] = FORMAT
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["num_records"] = len(self)
            file.attrs["metadata"] = _to_json(self.metadata)
            file["log_weights"] = self.log_weights
            file["chain"] = self.chain
            values = file.create_group("values", track_order=True)
            for key in _union(key_lists):
                present = np.array([key in keys for keys in key_sets])
                rows = [r[key] for r, has in zip(self.traces, present, strict=True) if has]
                values[_escape(key)] = _numeric(_stack(rows, key), key)
                values[_escape(key)].attrs["key"] = key
                if not present.all():
                    file[f"present/{_escape(key)}"] = present

    @classmethod
    def load(cls, path: str | Path) -> Empirical:
        """Read a posterior written by :meth:`save`; its records are dicts.

        Raises:
            ValueError: ``path`` is not a PPX posterior file.
        """
        if Path(path).exists() and not h5py.is_hdf5(path):
            raise ValueError(f"{str(path)!r} is not a PPX posterior file (not HDF5)")
        with h5py.File(path, "r") as file:
            _check_format(file, path)
            records: list[dict[str, Any]] = [{} for _ in range(int(file.attrs["num_records"]))]
            for escaped, dataset in file["values"].items():
                present = file.get(f"present/{escaped}")
                owners = range(len(records)) if present is None else np.flatnonzero(present[()])
                key = dataset.attrs["key"]
                for index, value in zip(owners, dataset[()], strict=True):
                    records[index][key] = value
            metadata = json.loads(file.attrs["metadata"])
            return cls(records, file["log_weights"][()], file["chain"][()], metadata)

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
            _merge_metadata([posterior.metadata for posterior in posteriors]),
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

    def _column(self, name: str) -> list[Any]:
        try:
            return [record[name] for record in self.traces]
        except KeyError:
            keys = sorted(_record_keys(self.traces[0]))
            raise KeyError(
                f"{name!r} is not a draw or tag of every trace; keys of the first record: {keys}"
            ) from None

    def _chain_rows(self) -> np.ndarray:
        """Record indices as a (chains, draws) array, chains cut to the shortest."""
        ids = np.unique(self.chain)
        rows = [np.flatnonzero(self.chain == i) for i in ids]
        length = min(len(r) for r in rows)
        if any(len(r) != length for r in rows):
            lengths = {int(i): len(r) for i, r in zip(ids, rows, strict=True)}
            warnings.warn(
                f"chains of unequal length {lengths}: each cut to {length} draws",
                stacklevel=3,
            )
        return np.stack([r[:length] for r in rows])


def logsumexp(values: np.ndarray) -> float:
    """log(sum(exp(values))), stable (via ``torch.logsumexp``)."""
    return float(torch.logsumexp(torch.from_numpy(np.asarray(values, dtype=np.float64)), 0))


def _per_record(values: Any, size: int, what: str, dtype: type, fill: float = 0.0) -> np.ndarray:
    if values is None:
        return np.full(size, fill, dtype=dtype)
    array = np.asarray(values)
    if array.shape != (size,):
        raise ValueError(f"{size} records but {array.size} {what}")
    if dtype is np.int64 and not np.array_equal(array, array.astype(np.int64)):
        raise ValueError(f"{what} must be integers, got {array[:5]}...")
    return array.astype(dtype)


def _record_keys(record: Any) -> list[str]:
    """Latent draw names (addresses where unnamed) and tags of a Trace; keys of a mapping."""
    if isinstance(record, Trace):
        keys = [
            d.name if d.name is not None and record.draw(d.name) is d else d.address
            for d in record.samples
        ]
        return keys + [tag for tag in record.tags if tag not in keys]
    if hasattr(record, "keys"):
        return list(record.keys())
    raise TypeError(f"a record is a ppx.Trace or a mapping, got {type(record).__name__}")


def _union(key_lists: list[list[str]]) -> list[str]:
    return list(dict.fromkeys(key for keys in key_lists for key in keys))


def _stack(values: list[Any], name: str) -> np.ndarray:
    """Stack values (one torch op for all-tensor values), keeping their dtype."""
    try:
        if all(isinstance(value, torch.Tensor) for value in values):
            with torch.no_grad():
                return torch.stack(values).cpu().numpy()
        return np.asarray(values)
    except (RuntimeError, TypeError, ValueError):
        try:
            return np.stack([_to_numpy(value) for value in values])
        except ValueError as error:
            raise ValueError(f"values of {name!r} cannot be stacked: {error}") from None


def _numeric(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype.kind not in "biufc":
        raise TypeError(f"only numeric values can be saved; {name!r} has dtype {array.dtype}")
    return array


def _weighted_quantile(columns: np.ndarray, weights: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Inverse weighted CDF of each column of ``columns`` (n, k) at ``q`` (m,): (m, k)."""
    result = np.empty((len(q), columns.shape[1]))
    for j, column in enumerate(columns.T):
        order = np.argsort(column, kind="stable")
        cdf = np.cumsum(weights[order])
        index = np.searchsorted(cdf / cdf[-1], q - 1e-12, side="left")
        result[:, j] = column[order][np.minimum(index, len(column) - 1)]
    return result


def _to_numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic | np.ndarray | torch.Tensor):
        return _to_numpy(value).tolist()
    raise TypeError(f"metadata must be JSON-able; got {type(value).__name__}: {value!r}")


def _to_json(metadata: Mapping[str, Any]) -> str:
    return json.dumps(metadata, default=_jsonable)


def _attr(value: Any) -> Any:
    return (
        value
        if isinstance(value, str | int | float | bool)
        else json.dumps(value, default=_jsonable)
    )


def _merge_metadata(metadatas: list[dict[str, Any]]) -> dict[str, Any]:
    merged = {}
    for key in _union([list(metadata) for metadata in metadatas]):
        encoded = {_to_json({key: m[key]}) if key in m else None for m in metadatas}
        same = len(encoded) == 1 and None not in encoded
        merged[key] = metadatas[0][key] if same else [m.get(key) for m in metadatas]
    return merged


def _escape(key: str) -> str:
    """An HDF5 link name for ``key``: ``%`` and ``/`` percent-encoded, no leading dot."""
    escaped = key.replace("%", "%25").replace("/", "%2F")
    return "%2E" + escaped[1:] if escaped.startswith(".") else escaped


def _check_format(file: h5py.File, path: str | Path) -> None:
    if file.attrs.get("ppx_format") != FORMAT:
        raise ValueError(
            f"{str(path)!r} is not a PPX posterior file (no ppx_format={FORMAT!r} attribute)"
        )
    version = int(file.attrs.get("format_version", -1))
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{str(path)!r} has posterior format version {version}; this PPX reads up to "
            f"{FORMAT_VERSION}: upgrade PPX"
        )


def _import_arviz() -> Any:
    with warnings.catch_warnings():  # arviz 0.2x announces its refactor on import
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


@contextlib.contextmanager
def _quiet(logger: logging.Logger, prefix: str) -> Iterator[None]:
    """Drop the log records of ``logger`` that start with ``prefix`` for the block."""

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(prefix)

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)
