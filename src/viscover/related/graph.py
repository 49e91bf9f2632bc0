"""The pin-board graph behind Related Pins' candidates (section 6 of the paper): which pins people saved to the
same boards.

A sparse pins x boards incidence matrix (rows are pin keys, columns board ids, both never reused) answers
co-occurrence for one pin with one sparse product, normalised by count, Jaccard or lift; a random walk
with restart over it (the way Pinterest's Pixie does) reaches pins two, four, six hops away; and the boards of
a weighted set of pins (a pin's text neighbours) reach what goes with pins like it. New saves make a
new matrix; nothing pin x pin is ever stored, so nothing else needs updating.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy import sparse

NORMALIZATIONS = ("count", "jaccard", "lift")


@dataclass(frozen=True)
class Scores:
    """Candidate pins (keys) and their scores, best first."""

    keys: np.ndarray
    scores: np.ndarray

    def top(self, count: int) -> Scores:
        return Scores(self.keys[:count], self.scores[:count])

    def as_dict(self) -> dict[int, float]:
        return dict(zip(self.keys.tolist(), self.scores.tolist(), strict=True))


def best_first(keys: np.ndarray, scores: np.ndarray) -> Scores:
    """Keys by score, best first; ties by key, so every ranking is deterministic."""
    keys, scores = np.asarray(keys, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    order = np.lexsort((keys, -scores))
    return Scores(keys[order], scores[order])


def normalized(shared: np.ndarray, degree: int, degrees: np.ndarray, boards: int, normalization: str) -> np.ndarray:
    """Boards shared with a pin of `degree` boards, per candidate of `degrees` boards: as they are (`count`),
    over the boards either is on (`jaccard`), or over what independent saves to `boards` boards would give
    (`lift`)."""
    if normalization == "jaccard":
        return shared / np.maximum(degree + degrees - shared, 1)
    if normalization == "lift":
        return shared * boards / np.maximum(degree * degrees, 1)
    if normalization == "count":
        return shared
    raise ValueError(f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")


class BoardGraph:
    """Pins x boards incidence, with degrees. Immutable, so requests can share one while `added` makes the
    next one with new (pin key, board id) saves."""

    def __init__(self, pins: np.ndarray | None = None, boards: np.ndarray | None = None) -> None:
        empty = np.zeros(0, np.int64)
        pins, boards = (empty if given is None else given for given in (pins, boards))
        self._set(self._with(sparse.csr_matrix((0, 0), dtype=np.float32), pins, boards))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int]]) -> BoardGraph:
        edges = np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
        return cls(edges[:, 0], edges[:, 1])

    def added(self, pins: np.ndarray, boards: np.ndarray) -> BoardGraph:
        """A new graph: this one with saves of pins to boards added (a save already there is kept once)."""
        graph = BoardGraph.__new__(BoardGraph)
        graph._set(self._with(self._matrix, pins, boards))
        return graph

    @staticmethod
    def _with(matrix: sparse.csr_matrix, pins: np.ndarray, boards: np.ndarray) -> sparse.csr_matrix:
        pins, boards = np.asarray(pins, dtype=np.int64), np.asarray(boards, dtype=np.int64)
        rows = max(matrix.shape[0], int(pins.max()) + 1 if len(pins) else 0)
        cols = max(matrix.shape[1], int(boards.max()) + 1 if len(boards) else 0)
        matrix = matrix.copy()
        matrix.resize((rows, cols))
        if len(pins):
            added = sparse.csr_matrix((np.ones(len(pins), np.float32), (pins, boards)), shape=(rows, cols))
            matrix = matrix + added
            matrix.data[:] = 1.0  # a pin saved twice to one board is one edge
        matrix.sort_indices()
        return matrix

    def _set(self, matrix: sparse.csr_matrix) -> None:
        self._matrix = matrix
        self._by_board = matrix.T.tocsr()
        self.pin_degree = np.diff(matrix.indptr).astype(np.int64)
        self.board_size = np.diff(self._by_board.indptr).astype(np.int64)
        self.edges = int(matrix.nnz)
        self.boards = int((self.board_size > 0).sum())

    def boards_of(self, key: int) -> np.ndarray:
        if key >= self._matrix.shape[0]:
            return np.zeros(0, dtype=np.int64)
        return self._matrix.indices[self._matrix.indptr[key] : self._matrix.indptr[key + 1]].astype(np.int64)

    def degree(self, key: int) -> int:
        return int(self.pin_degree[key]) if key < len(self.pin_degree) else 0

    def degrees(self, keys: np.ndarray) -> np.ndarray:
        """Boards each pin is on (0 for pins the graph has never seen)."""
        keys = np.asarray(keys, dtype=np.int64)
        inside = keys < len(self.pin_degree)
        return np.where(inside, self.pin_degree[np.where(inside, keys, 0)], 0)

    def cooccurrence(self, key: int, normalization: str = "count") -> Scores:
        """Pins sharing a board with `key` (itself left out), scored by how many boards they share (`count`),
        that over the boards either is on (`jaccard`), or over what independent saves would give (`lift`)."""
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {normalization!r}; choose one of {', '.join(NORMALIZATIONS)}")
        if self.degree(key) == 0:
            return Scores(np.zeros(0, np.int64), np.zeros(0))
        shared = (self._matrix[key] @ self._by_board).tocoo()  # 1 x pins: boards shared with each pin
        keys, counts = shared.col.astype(np.int64), shared.data.astype(np.float64)
        mine = keys != key
        keys, counts = keys[mine], counts[mine]
        return best_first(keys, normalized(counts, self.degree(key), self.pin_degree[keys], self.boards, normalization))

    def on_boards_of(self, weights: Mapping[int, float], key: int) -> Scores:
        """Pins on the boards of weighted pins (`key` left out), each scored by the weight of those pins on the
        boards it shares with them: what goes with pins like the query, for a query whose own boards are few."""
        inside = [(pin, weight) for pin, weight in weights.items() if pin < self._matrix.shape[0]]
        if not inside:
            return Scores(np.zeros(0, np.int64), np.zeros(0))
        pins, values = np.array(inside, dtype=np.float64).T
        weighted = sparse.csr_matrix(
            (values, (np.zeros(len(pins), np.int64), pins.astype(np.int64))), shape=(1, self._matrix.shape[0])
        )
        found = (weighted @ self._matrix @ self._by_board).tocoo()  # 1 x pins: weight on boards shared with each
        keys, scores = found.col.astype(np.int64), found.data.astype(np.float64)
        mine = (keys != key) & (scores > 0)
        return best_first(keys[mine], scores[mine])

    def walk(self, key: int, steps: int = 20_000, restart: float = 0.3, seed: int = 0, enough: int = 0) -> Scores:
        """A random walk with restart from `key` over pins and boards: at each step a walker jumps back to `key`
        with probability `restart`, else moves to a random neighbour (pin → board → pin …). Pins are scored
        by their share of the visits to pins other than `key`: personalised PageRank, estimated. Walkers move
        in parallel, `steps` moves in all; with `enough`, the walk stops once that many pins have 4 visits or
        more (Pixie's early stopping)."""
        if self.degree(key) == 0:
            return Scores(np.zeros(0, np.int64), np.zeros(0))
        rng = np.random.default_rng(seed)
        walkers = max(1, min(256, steps // 20))
        where = np.full(walkers, key, dtype=np.int64)
        on_board = np.zeros(walkers, dtype=bool)
        visits = np.zeros(self._matrix.shape[0], dtype=np.int64)
        well_visited = 0  # pins other than `key` with 4 visits or more
        for _ in range(max(1, steps // walkers)):
            jump = rng.random(walkers) < restart
            from_pin, from_board = ~on_board & ~jump, on_board & ~jump
            where[from_pin] = self._step(self._matrix, self.pin_degree, where[from_pin], rng)
            where[from_board] = self._step(self._by_board, self.board_size, where[from_board], rng)
            where[jump] = key
            on_board = from_pin
            landed = np.unique(where[~on_board])
            before = visits[landed] < 4
            np.add.at(visits, where[~on_board], 1)
            well_visited += int(np.count_nonzero(before & (visits[landed] >= 4) & (landed != key)))
            if enough and well_visited >= enough:
                break
        visits[key] = 0
        keys = np.flatnonzero(visits)
        return best_first(keys, visits[keys] / max(1, visits.sum()))

    @staticmethod
    def _step(
        matrix: sparse.csr_matrix, degrees: np.ndarray, nodes: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """A uniformly random neighbour of each node (rows of `matrix`, whose row lengths are `degrees`)."""
        start = matrix.indptr[nodes]
        return matrix.indices[start + (rng.random(len(nodes)) * degrees[nodes]).astype(np.int64)].astype(np.int64)

    def popularity(self) -> Scores:
        """Every pin on a board, by how many boards it is on."""
        keys = np.flatnonzero(self.pin_degree)
        return best_first(keys, self.pin_degree[keys])
