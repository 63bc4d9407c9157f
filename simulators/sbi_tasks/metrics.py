"""The classifier two-sample test (C2ST) with sbibm's settings."""

from __future__ import annotations

from torch import Tensor

__all__ = ["c2st"]


def c2st(samples_a: Tensor, samples_b: Tensor, seed: int = 1, n_folds: int = 5) -> float:
    """Classifier two-sample test accuracy, as sbibm scores posteriors (0.5: no difference).

    sbibm's definition, run by sbi's :func:`sbi.utils.metrics.c2st`: both sample sets
    z-scored with the mean and standard deviation of ``samples_a``; a scikit-learn
    ``MLPClassifier`` (ReLU, two hidden layers of ``10 * dim`` units, adam,
    ``max_iter=10000``, ``random_state=seed``, no early stopping); the mean accuracy over
    ``n_folds``-fold shuffled cross-validation (``KFold(random_state=seed)``).

    Arguments:
        samples_a: Samples ``(n, dim)``, e.g. the reference posterior's.
        samples_b: Samples ``(m, dim)``, e.g. the estimated posterior's.
        seed: Seed of the classifier and of the folds (sbibm's default is 1).
        n_folds: Number of cross-validation folds.

    Returns:
        The accuracy, from about 0.5 (indistinguishable) to 1 (disjoint).

    References:
        Lopez-Paz and Oquab, "Revisiting classifier two-sample tests", ICLR 2017.
        Lueckmann et al., "Benchmarking simulation-based inference", AISTATS 2021.
    """
    from sbi.utils.metrics import c2st as sbi_c2st  # lazily: sbi is heavy and optional

    dim = samples_a.shape[-1]
    settings = {
        "activation": "relu",
        "hidden_layer_sizes": (10 * dim, 10 * dim),
        "max_iter": 10000,
        "solver": "adam",
    }
    accuracy = sbi_c2st(
        samples_a.float(),
        samples_b.float(),
        seed=seed,
        n_folds=n_folds,
        classifier="mlp",
        classifier_kwargs=settings,
    )
    return float(accuracy)
