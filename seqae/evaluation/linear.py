"""The one linear probe of every evaluation: standardised multinomial logistic regression (scikit-learn).

:func:`linear_classifier` is the estimator (for cross-validation); :class:`Probe` fits it once, quietly
(convergence warnings are expected: the iteration budget is the recipe's), and scores held-out data.
"""

from __future__ import annotations

import warnings

import numpy as np


def linear_classifier(max_iter: int = 1000, c: float = 1.0, standardise: bool = True):
    """An unfitted scikit-learn pipeline: ``StandardScaler`` (when ``standardise``) then logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    steps = ([StandardScaler()] if standardise else []) + [LogisticRegression(max_iter=max_iter, C=c)]
    return make_pipeline(*steps)


class Probe:
    """A linear classifier fitted on features ``x`` ``(n, dim)`` and labels ``y`` ``(n,)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray, max_iter: int = 1000, c: float = 1.0, standardise: bool = True):
        self.model = linear_classifier(max_iter, c, standardise)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.fit(x, y)

    @property
    def classes(self) -> np.ndarray:
        return self.model.classes_

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict(x)

    def log_proba(self, x: np.ndarray) -> np.ndarray:
        """``(n, classes)`` log-probabilities, columns in the order of :attr:`classes`."""
        return self.model.predict_log_proba(x)

    def accuracy(self, x: np.ndarray, y: np.ndarray) -> float:
        """Share of ``x`` labelled ``y`` (labels never seen in fitting count as wrong)."""
        return float((self.predict(x) == y).mean())
