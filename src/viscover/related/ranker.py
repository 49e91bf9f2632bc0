"""A pairwise linear Rank-SVM (Joachims 2002), the re-ranker of the paper's Related Pins: within one query, a
candidate people kept should score above one they did not. scikit-learn's `LinearSVC` learns on feature
differences of such pairs; features are standardised first, so the weights compare across features."""

from __future__ import annotations

import numpy as np

from viscover.errors import NotEnoughDataError


class RankSVM:
    """`fit(X, y, groups)` learns w from pairs within each group (query) whose labels differ;
    `decision_function(X)` is w · standardised x. A scikit-learn estimator (`get_params`, `set_params`)."""

    ARRAYS = ("coef", "mean", "scale", "params")  # what `to_arrays` gives and `from_arrays` takes

    def __init__(self, C: float = 0.1, max_pairs: int = 1000, seed: int = 0) -> None:
        self.C, self.max_pairs, self.seed = C, max_pairs, seed

    def get_params(self, deep: bool = True) -> dict[str, object]:
        return {"C": self.C, "max_pairs": self.max_pairs, "seed": self.seed}

    def set_params(self, **params: object) -> RankSVM:
        for name, value in params.items():
            if name not in self.get_params():
                raise ValueError(f"RankSVM has no parameter {name!r}; it has {', '.join(self.get_params())}")
            setattr(self, name, value)
        return self

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> RankSVM:
        """Learn from every group's (better, worse) pairs, at most `max_pairs` per group (seeded sample)."""
        X, y, groups = np.asarray(X, dtype=np.float64), np.asarray(y), np.asarray(groups)
        self.mean_ = X.mean(axis=0) if len(X) else np.zeros(X.shape[1])
        self.scale_ = X.std(axis=0) if len(X) else np.ones(X.shape[1])
        self.scale_[self.scale_ == 0] = 1.0
        differences = pair_differences((X - self.mean_) / self.scale_, y, groups, self.max_pairs, self.seed)
        return self.fit_differences(differences)

    def fit_differences(self, differences: np.ndarray, weights: np.ndarray | None = None) -> RankSVM:
        """Learn w from standardised (better - worse) pair differences, each weighing `weights` (default 1);
        `mean_` and `scale_` must be set."""
        from sklearn.svm import LinearSVC

        if not len(differences):
            raise NotEnoughDataError("no query has both a relevant and an irrelevant candidate to learn from")
        # every pair both ways (so both classes appear and the hyperplane goes through 0) is the same objective as
        # each pair once, every other one turned round, with twice the C: half the rows to learn from
        if len(differences) > 1:
            signs = np.resize([1.0, -1.0], len(differences))
            rows, labels, C = differences * signs[:, None], signs, 2 * self.C
        else:
            rows, labels, C = np.r_[differences, -differences], np.array([1.0, -1.0]), self.C
            weights = None if weights is None else np.r_[weights, weights]
        svm = LinearSVC(C=C, fit_intercept=False, random_state=self.seed, max_iter=5000)
        svm.fit(rows, labels, sample_weight=weights)
        self.coef_ = svm.coef_[0].copy()
        return self

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Each feature's part of each row's score (the row sums are `decision_function`)."""
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_ * self.coef_

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.contributions(X).sum(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {
            "coef": self.coef_,
            "mean": self.mean_,
            "scale": self.scale_,
            "params": np.array([self.C, self.max_pairs, self.seed], dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RankSVM:
        C, max_pairs, seed = arrays["params"].tolist()
        ranker = cls(C, int(max_pairs), int(seed))
        ranker.coef_, ranker.mean_, ranker.scale_ = arrays["coef"], arrays["mean"], arrays["scale"]
        return ranker


def pair_differences(X: np.ndarray, y: np.ndarray, groups: np.ndarray, max_pairs: int, seed: int) -> np.ndarray:
    """x_better - x_worse for pairs of rows within one group whose labels differ (seeded sample per group)."""
    rng = np.random.default_rng(seed)
    differences: list[np.ndarray] = []
    order = np.argsort(groups, kind="stable")  # each group's rows together, in their own order
    _, starts = np.unique(groups[order], return_index=True)
    for rows in np.split(order, starts[1:]):
        better, worse = np.nonzero(y[rows][:, None] > y[rows][None, :])
        pairs = np.stack([rows[better], rows[worse]], axis=1)
        if len(pairs) > max_pairs:
            pairs = pairs[rng.choice(len(pairs), max_pairs, replace=False)]
        differences.append(X[pairs[:, 0]] - X[pairs[:, 1]])
    return np.concatenate(differences) if differences else np.zeros((0, X.shape[1]))
