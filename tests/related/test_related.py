"""Related Pins: the graph's candidate scores, the Rank-SVM, the nested split, cold pins, live board updates,
the CLI, and the evaluation on a few real ikea-rooms rooms."""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from tests.conftest import IKEA, ikea_manifest
from tests.test_cli import viscover
from viscover import Engine
from viscover.box import Box
from viscover.config import Settings
from viscover.errors import BadArgumentError, BadSettingError, NotEnoughDataError, UnknownPinError
from viscover.ingest import Pin
from viscover.related import (
    FEATURE_SETS,
    MODEL_FILE,
    VARIANTS,
    BoardGraph,
    Categories,
    LiveRelated,
    RankSVM,
    RelatedModel,
    RelatedPins,
    load_related,
)
from viscover.related.evaluate import AUTO, FULL, ROWS, evaluate_related, ranking_metrics, write_related_report
from viscover.related.related import GRAPH_FEATURES, KINDS, NEIGHBOUR_FEATURES, feature_names, visual_vectors
from viscover.related.train import (
    FOLDS,
    LabelQuery,
    QueryRows,
    board_folds,
    clustered_error,
    fit_model,
    train_model,
    training_rows,
    within_one_standard_error,
)
from viscover.search import Searcher

# pins 0-4 on boards 10-12:  board 10: {0, 1, 2}, board 11: {0, 1, 3}, board 12: {3, 4}
HAND_MADE = [(0, 10), (1, 10), (2, 10), (0, 11), (1, 11), (3, 11), (3, 12), (4, 12)]


def test_cooccurrence_on_a_hand_made_graph() -> None:
    graph = BoardGraph.from_pairs(HAND_MADE)
    assert graph.edges == 8 and graph.boards == 3
    assert graph.cooccurrence(0).as_dict() == {1: 2.0, 2: 1.0, 3: 1.0}
    jaccard = graph.cooccurrence(0, "jaccard").as_dict()  # shared / (deg 0 + deg other - shared)
    assert jaccard == pytest.approx({1: 2 / 2, 2: 1 / 2, 3: 1 / 3})
    lift = graph.cooccurrence(3, "lift").as_dict()  # shared * boards / (deg 3 * deg other)
    assert lift == pytest.approx({0: 3 / 4, 1: 3 / 4, 4: 3 / 2})
    assert list(graph.cooccurrence(3, "lift").keys) == [4, 0, 1]  # best first, ties by key
    assert graph.cooccurrence(99).as_dict() == {} and graph.walk(99).as_dict() == {}
    # the boards of pins 2 (weight 1: board 10) and 4 (weight 0.5: board 12), for query 0; pin 99 is on none
    reached = graph.on_boards_of({2: 1.0, 4: 0.5, 99: 3.0}, 0)
    assert reached.as_dict() == {1: 1.0, 2: 1.0, 3: 0.5, 4: 0.5} and list(reached.keys) == [1, 2, 3, 4]
    assert graph.on_boards_of({}, 0).as_dict() == {} == graph.on_boards_of({99: 1.0}, 0).as_dict()
    with pytest.raises(ValueError, match="unknown normalization"):
        graph.cooccurrence(0, "cosine")
    grown = graph.added(np.array([2, 7]), np.array([11, 13]))  # new saves make a new graph; the old one stays
    assert grown.cooccurrence(0).as_dict()[2] == 2.0 and grown.edges == 10 and grown.degree(7) == 1
    assert graph.cooccurrence(0).as_dict()[2] == 1.0 and graph.edges == 8 and graph.degree(7) == 0


def test_random_walk_estimates_personalised_pagerank() -> None:
    """Visits to pins of a walk with restart from a pin ≈ networkx's personalised PageRank on the bipartite
    graph (restart = 1 - alpha), over pins other than the start, normalised."""
    rng = np.random.default_rng(3)
    pairs = sorted({(int(p), int(b)) for p, b in zip(rng.integers(0, 30, 90), rng.integers(100, 112, 90), strict=True)})
    graph = BoardGraph.from_pairs(pairs)
    start = pairs[0][0]
    bipartite = nx.Graph([(f"p{p}", f"b{b}") for p, b in pairs])
    ppr = nx.pagerank(bipartite, alpha=0.7, personalization={f"p{start}": 1.0}, tol=1e-12, max_iter=1000)
    # the walk counts where walkers stand after each move; pins are every other step, so compare pin shares
    expected = {int(node[1:]): value for node, value in ppr.items() if node.startswith("p") and node != f"p{start}"}
    total = sum(expected.values())
    walked = graph.walk(start, steps=400_000, restart=0.3, seed=1).as_dict()
    for pin, value in expected.items():
        assert walked.get(pin, 0.0) == pytest.approx(value / total, abs=0.01)
    top = sorted(expected, key=lambda p: (-expected[p], p))[:5]
    assert set(graph.walk(start, steps=400_000, restart=0.3, seed=1).top(8).keys.tolist()) >= set(top[:3])
    again = graph.walk(start, steps=2000, restart=0.3, seed=1)
    assert again.as_dict() == graph.walk(start, steps=2000, restart=0.3, seed=1).as_dict()  # seeded
    # early stopping on a bigger graph: once 5 pins have 4 visits the walk stops, having met far fewer pins
    big = BoardGraph(rng.integers(0, 5000, 20_000), rng.integers(0, 2000, 20_000))
    full, early = (big.walk(3, steps=100_000, seed=2, enough=enough) for enough in (0, 5))
    assert 5 <= len(early.keys) < len(full.keys) / 4


def test_one_standard_error_rule_keeps_the_simpler_choice_unless_the_best_wins_by_more_than_its_noise() -> None:
    control, richer = ("cooccurrence", "none"), ("visual", "A")
    boards = np.repeat(np.arange(10), 4)  # 10 boards of 4 held-out queries
    rng = np.random.default_rng(0)
    noisy = rng.uniform(0, 0.4, size=40)
    swing = rng.normal(0, 0.05, size=10)
    swing = np.repeat(swing - swing.mean(), 4)  # how much the richer choice's gain swings, board by board
    # it wins by 0.01 on average, far less than the standard error of that gain: keep the control
    choice, error = within_one_standard_error({control: noisy, richer: noisy + 0.01 + swing}, boards)
    assert choice == control and error[control] > 0.01 and error[richer] == 0.0
    # by 0.2, it is chosen
    assert within_one_standard_error({control: noisy, richer: noisy + 0.2 + swing}, boards)[0] == richer
    # paired: a gain of 0.01 on every query is no noise, however much the queries differ from each other
    assert within_one_standard_error({control: noisy, richer: noisy + 0.01}, boards)[0] == richer
    # the error is the sandwich estimate clustered by board; with one query a board, the usual standard error
    assert clustered_error(noisy, np.arange(40)) == pytest.approx(noisy.std(ddof=1) / np.sqrt(40))
    together = np.repeat(rng.uniform(0, 0.4, size=10), 4)  # queries of one board move together
    ratio = clustered_error(together, boards) / clustered_error(together, np.arange(40))
    assert 1.9 < ratio < 2.2  # about sqrt(4): four queries that move together tell as much as one
    assert clustered_error(together, np.zeros(40)) == 0.0  # one board: nothing to tell


def test_rank_svm_recovers_a_known_weight_vector(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    true = np.array([2.0, -1.0, 0.0, 0.5, 1.5, 0.0, 1.0, -0.5])  # as many as the co-occurrence feature set has
    X = rng.normal(size=(4000, 8)) * np.array([1.0, 3.0, 1.0, 0.5, 0.7, 2.0, 1.0, 1.5])
    groups = np.repeat(np.arange(200), 20)
    y = (X @ true + rng.normal(scale=0.3, size=len(X)) > 0.5).astype(int)
    ranker = RankSVM(C=1.0, max_pairs=100).fit(X, y, groups)
    learned = ranker.coef_ / ranker.scale_  # back to the raw features' units
    cosine = learned @ true / np.linalg.norm(learned) / np.linalg.norm(true)
    assert cosine > 0.97
    assert np.allclose(ranker.decision_function(X), ranker.contributions(X).sum(axis=1))
    model = RelatedModel(
        {"warm": "cooccurrence"}, {"warm": "A"}, Categories.from_board_types({10: "Kitchen"}), {"warm": ranker}, 2
    )
    saved = RelatedModel.load(model.save(tmp_path / "ranker.npz"))
    assert saved.text_words == 2
    names, variant, warm = saved.for_query(warm=True)
    assert len(names) == 8 and variant == "A" and np.array_equal(warm.decision_function(X), ranker.decision_function(X))
    assert saved.for_query(warm=False) is None  # no cold ranker: cold pins rank by their sources
    assert saved.describe() == "warm cooccurrence (variant A), cold unranked"
    other = RelatedModel({"warm": "visual"}, {"warm": "A"}, model.categories, {"warm": ranker}, 2)  # 10 features
    with pytest.raises(BadSettingError, match="weights for other features"):
        RelatedModel.load(other.save(tmp_path / "other.npz"))
    (tmp_path / "broken.npz").write_bytes(b"not a model")
    with pytest.raises(BadSettingError, match="related train"):
        RelatedModel.load(tmp_path / "broken.npz")
    with pytest.raises(NotEnoughDataError, match="no query has both"):
        RankSVM().fit(X[:20], np.ones(20, int), groups[:20])
    one_pair = RankSVM().fit(X[:2], np.array([1, 0]), np.zeros(2))  # one pair still gives both classes
    assert one_pair.decision_function(X[:1]) > one_pair.decision_function(X[1:2])


def test_board_folds_keep_scored_boards_out_of_the_features() -> None:
    rng = np.random.default_rng(1)
    pins, boards = rng.integers(0, 300, 2000), rng.integers(0, 60, 2000)
    folds = board_folds(pins, boards, 5, seed=4)
    assert len(folds) == 5 and all(len(fold.label_boards) == 12 for fold in folds)
    assert set().union(*(fold.label_boards for fold in folds)) == set(boards.tolist())  # each board labels once
    pairs = {(int(p), int(b)) for p, b in zip(pins, boards, strict=True)}
    for fold in folds:
        assert set(fold.label_board_of.tolist()) == fold.label_boards
        for pin in set(fold.label_pins.tolist()):
            assert not set(fold.feature_graph.boards_of(pin).tolist()) & fold.label_boards
        label_pairs = set(zip(fold.label_pins.tolist(), fold.label_board_of.tolist(), strict=True))
        assert fold.feature_graph.edges + len(label_pairs) == len(pairs)  # every save on exactly one side
    assert [f.label_boards for f in board_folds(pins, boards, 5, seed=4)] == [f.label_boards for f in folds]  # seeded
    assert len(board_folds(pins[:3], np.array([7, 7, 8]), 5, seed=0)) == 2  # no more folds than boards


def test_related_pins_cold_start_and_live_board_updates(ikea_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ikea_home, home)
    manifest, rooms = ikea_manifest(tmp_path)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    cold = next(row["id"] for row in rows if not row["boards"])
    query = rooms[0]["products"][0]
    model_file = home / MODEL_FILE
    trained_at = model_file.stat().st_mtime_ns
    with Searcher(Settings.load(home)) as searcher:
        live = LiveRelated(searcher)
        related = live()
        # 16 rooms, each a label board once, teach a ranker for each kind of query
        assert related.model is not None and set(related.model.rankers) == set(related.model.variants) == set(KINDS)
        hits = related.related(query, k=200)
        mates = {p for room in rooms if query in room["products"] for p in room["products"]} - {query}
        assert len({h.pin.pin_id for h in hits[: len(mates)]} & mates) >= len(mates) / 2, "board-mates lead"
        assert sum(hits[0].contributions.values()) == pytest.approx(hits[0].score)
        assert any("neighbour boards" in h.sources for h in hits)  # the boards of its text neighbours, warm only
        assert [h.rank for h in related.related(query, k=3, offset=2)] == [3, 4, 5]
        assert [h.pin.pin_id for h in related.related(query, k=3, offset=2)] == [h.pin.pin_id for h in hits[2:5]]

        cold_hits = related.related(cold, k=10)  # the cold ranker, on visual and text candidates only
        assert len(cold_hits) == 10 and all(set(h.sources) <= {"visual", "text"} for h in cold_hits)
        assert any("visual" in h.sources for h in cold_hits) and any("text" in h.sources for h in cold_hits)
        assert sum(cold_hits[0].contributions.values()) == pytest.approx(cold_hits[0].score)

        # a new save: the cold pin joins the query's room; its list changes without retraining
        stranger = next(h.pin.pin_id for h in reversed(hits) if "cooccurrence" not in h.sources)
        with Engine.open(home) as engine:
            cold_row = next(row for row in rows if row["id"] == cold)
            engine.add(Path(cold_row["image"]).read_bytes(), cold, boards=[rooms[0]["room"]])
            stranger_row = next(row for row in rows if row["id"] == stranger)
            engine.add(Path(stranger_row["image"]).read_bytes(), stranger, boards=[rooms[0]["room"]])
        after = live().related(query, k=200)
        now_cooccurring = {h.pin.pin_id for h in after if "cooccurrence" in h.sources}
        assert {cold, stranger} <= now_cooccurring
        assert [h.pin.pin_id for h in after] != [h.pin.pin_id for h in hits]
        assert "cooccurrence" in next(h for h in live().related(cold, k=200) if h.pin.pin_id == query).sources
        assert model_file.stat().st_mtime_ns == trained_at  # nothing was retrained

        # a deleted pin's saves go with it (its save numbers may be given to new saves: all are read again)
        with Engine.open(home) as engine:
            engine.delete([stranger])
            engine.add(Path(stranger_row["image"]).read_bytes(), f"{stranger}-again", boards=[rooms[1]["room"]])
        again = live().related(rooms[1]["products"][0], k=200)
        assert "cooccurrence" in next(h.sources for h in again if h.pin.pin_id == f"{stranger}-again")
        assert stranger not in {h.pin.pin_id for h in live().related(query, k=200)}
        assert live.graph().edges == searcher.catalog.board_saves_digest()[0] == len(searcher.catalog.board_saves()[0])

        with pytest.raises(UnknownPinError):
            related.related("no-such-pin")
        with pytest.raises(BadArgumentError):
            related.related(query, k=0)


def test_related_without_a_model_ranks_by_shared_boards(ikea_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ikea_home, home)
    (home / MODEL_FILE).unlink()
    _, rooms = ikea_manifest(tmp_path)
    query = rooms[0]["products"][0]
    with Searcher(Settings.load(home)) as searcher:
        hits = load_related(searcher).related(query, k=100)
    mates = {p for room in rooms if query in room["products"] for p in room["products"]} - {query}
    assert hits[0].contributions == {}
    assert {h.pin.pin_id for h in hits[: len(mates)]} == mates  # every pin sharing a board comes first
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_text_candidates_match_as_many_rare_words_as_set(ikea_home: Path) -> None:
    """A pin's text query is its `related_text_words` rarest description words, or as many as the loaded model
    learned from: fewer words, fewer candidates."""
    many = Settings.model_fields["related_text_words"].default  # the fixture's model learned with the default
    words, found = {}, {}
    for count in (many, 1):
        with Searcher(Settings.load(ikea_home).model_copy(update={"related_text_words": count})) as searcher:
            related = RelatedPins(searcher, BoardGraph)
            pins = list(searcher.catalog)
            words[count] = [related.rarest_words(pin.description) for pin in pins]
            found[count] = sum(len(related.candidates(pin, BoardGraph()).scores["text"]) for pin in pins)
            trained = load_related(searcher)
            assert trained.model.text_words == many
            assert [trained.rarest_words(pin.description) for pin in pins] == words[many]
    assert many > 1 and any(len(query) == many for query in words[many])
    assert words[1] == [query[:1] for query in words[many]] and found[1] < found[many]


def test_cli_related_train_and_show(ikea_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ikea_home, home)
    manifest, _ = ikea_manifest(tmp_path)
    query = next(row["id"] for row in map(json.loads, manifest.read_text().splitlines()) if not row["boards"])
    trained = viscover("related", "train", "--features", "visual", "--variant", "none", home=home)
    assert trained.returncode == 0 and "cold visual (variant none)" in trained.stdout, trained.stderr
    shown = json.loads(viscover("related", "show", query, "-k", "5", "--json", home=home).stdout)
    assert [r["rank"] for r in shown] == [1, 2, 3, 4, 5]
    assert set(shown[0]["contributions"]) == {*GRAPH_FEATURES, *NEIGHBOUR_FEATURES, "visual pool", "visual logits"}
    explained = viscover("related", "show", query, "-k", "2", "--explain", home=home)
    lines = explained.stdout.splitlines()
    assert explained.returncode == 0 and len(lines) == 5  # a header, then each pin and its score's parts
    assert all(re.fullmatch(r" {8}([a-z ]+ [+-]\d\.\d{3}(, )?){6}", line) for line in lines[2::2]), lines
    missing = viscover("related", "show", "no-such-pin", home=home)
    assert missing.returncode == 2 and "no-such-pin" in missing.stderr and "Traceback" not in missing.stderr
    bad = viscover("related", "train", "--variant", "D", home=home)
    assert bad.returncode == 2 and "unknown variant 'D'" in bad.stderr


def test_eval_related_on_a_few_rooms(tmp_path: Path) -> None:
    settings = Settings.load(tmp_path / "home")
    study = evaluate_related(IKEA, settings, tmp_path / "work", seeds=(0,), draws=50, limit=8, folds=3, progress=False)
    assert study.rooms == 8 and study.outcomes
    assert {o.seed for o in study.outcomes} == {0} and all(o.unit.startswith("0:") for o in study.outcomes)
    warm = study.subset(True)
    assert warm and all(set(o.recall) == set(ROWS) for o in warm)
    text = write_related_report(study, tmp_path / "out", "viscover eval related")
    assert "## Bars" in text and f"{FULL} / cooccurrence" in text and f"| {AUTO} |" in text
    assert "in each of 3 folds of them" in text
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"related.md", "related.csv", "related-recall.png"}
    assert ranking_metrics([5, 1, 9], {1, 2}) == pytest.approx((0.5, (1 / np.log2(3)) / (1 + 1 / np.log2(3))))


def test_requests_share_the_graph_while_saves_arrive(ikea_home: Path, tmp_path: Path) -> None:
    """Readers on many threads while a writer saves pins to boards: no request fails or sees half a graph."""
    home = tmp_path / "home"
    shutil.copytree(ikea_home, home)
    manifest, rooms = ikea_manifest(tmp_path)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    errors: list[BaseException] = []
    done = threading.Event()
    with Searcher(Settings.load(home)) as searcher:
        live = LiveRelated(searcher)

        def read() -> None:
            while not done.is_set():
                try:
                    live().related(rooms[2]["products"][0], k=50)
                except BaseException as exc:  # any failure is the test's failure
                    errors.append(exc)

        readers = [threading.Thread(target=read) for _ in range(3)]
        for reader in readers:
            reader.start()
        with Engine.open(home) as engine, engine.writing():
            for n, row in enumerate(rows[:12]):  # each save its own transaction, as ingest writes them
                engine.catalog.update(engine.catalog.get(row["id"]).key, boards=[f"new-board-{n % 3}"])
        done.set()
        for reader in readers:
            reader.join()
        assert not errors, errors[:3]
        assert live.graph().edges == searcher.catalog.board_saves_digest()[0]


def test_training_builds_features_without_its_label_boards(ikea_home: Path) -> None:
    with Searcher(Settings.load(ikea_home)) as searcher:
        _, pins, boards = searcher.catalog.board_saves()
        model, report = train_model(searcher, pins, boards, feature_set="cooccurrence", variant="none", seed=3)
        auto, chosen_by = train_model(searcher, pins, boards, feature_set="auto", variant="auto", seed=3)
        with pytest.raises(BadArgumentError, match="unknown feature set"):
            train_model(searcher, pins, boards, feature_set="pixels", variant="none")
        with pytest.raises(BadArgumentError, match="for each kind of query"):
            train_model(searcher, pins, boards, feature_set={"warm": "visual"}, variant="none")
        rows = training_rows(searcher, pins, boards, seed=3, progress=False)
    # auto's held-out groups fit side by side on threads, to the same numbers
    one, two = (fit_model(rows, "auto", "auto", 3, threads)[1] for threads in (1, 2))
    assert one.dev_recall and (one.dev_recall, one.dev_error) == (two.dev_recall, two.dev_error)
    assert report.boards == len(set(boards.tolist()))  # every board gives labels once
    assert report.folds == min(FOLDS, report.boards)
    assert model.rankers and set(model.feature_sets.values()) == {"cooccurrence"} and not report.dev_recall
    assert not report.dev_error
    assert chosen_by.dev_recall and set(chosen_by.dev_recall) <= set(auto.rankers)
    for kind, recall in chosen_by.dev_recall.items():  # each kind's choice: the simplest within one SE of the best
        # the sets without visual features rank alike under every variant: offered once
        offered = [(f, v) for f in FEATURE_SETS[1:] for v in VARIANTS if f != "neighbours" or v == "none"]
        assert list(recall) == offered
        best, error = max(recall.values()), chosen_by.dev_error[kind]
        simplest = next(choice for choice, r in recall.items() if best - r <= error[choice])
        assert (auto.feature_sets[kind], auto.variants[kind]) == simplest


def test_related_train_learns_each_kind_of_query_on_its_default_features(ikea_home: Path) -> None:
    settings = Settings.load(ikea_home)
    model = RelatedModel.load(ikea_home / MODEL_FILE)
    assert model.feature_sets == {"warm": settings.related_warm_features, "cold": settings.related_cold_features}
    assert set(model.variants.values()) == {settings.related_variant}
    # each kind's ranker weighs exactly its set's features
    for kind, ranker in model.rankers.items():
        assert len(ranker.coef_) == len(feature_names(model.feature_sets[kind], model.categories))


def test_training_rows_for_each_variant_are_what_serving_computes(ikea_home: Path) -> None:
    """Variants A and B rank by the pooled similarity on the query's dominant object, none and C by the whole
    image's: training's two feature matrices must be exactly what serving computes for each."""
    with Searcher(Settings.load(ikea_home)) as searcher:
        _, pins, boards = searcher.catalog.board_saves()
        graph, categories = BoardGraph(pins, boards), Categories()
        names = feature_names("visual", categories)
        related = RelatedPins(searcher, lambda: graph)
        run = searcher.snapshot().objects.model

        def share(pin: Pin) -> float:  # of the image its dominant object's box covers (1 without one)
            found = searcher.catalog.dominant_object(run, pin.key)
            box = found[0].box if found else Box(0, 0, pin.width, pin.height)
            return box.area / (pin.width * pin.height)

        # the smallest dominant object: with its context, a bigger one's crop may be the whole image
        pin = min(searcher.catalog.by_keys(sorted(set(pins.tolist()))).values(), key=share)
        rows = QueryRows.of(related, pin, LabelQuery(pin.key, 0, frozenset(), 0), graph, names, categories)
        candidates = related.candidates(pin, graph)
        on_object, _ = related.features(pin, candidates, graph, names, categories, "A")
        plain, _ = related.features(pin, candidates, graph, names, categories, "none")
    pool = names.index("visual pool")
    assert rows.dominant
    assert np.array_equal(rows.rows("A"), on_object) and np.array_equal(rows.rows("B"), on_object)
    assert np.array_equal(rows.rows("none"), plain) and np.array_equal(rows.rows("C"), plain)
    assert not np.allclose(on_object[:, pool], plain[:, pool])  # the object's similarity, not the image's
    assert np.array_equal(np.delete(on_object, pool, axis=1), np.delete(plain, pool, axis=1))


def test_bad_input_to_the_related_commands(ikea_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(ikea_home, home)
    unknown = tmp_path / "types.jsonl"
    unknown.write_text('{"board": "no-such-board", "type": "Kitchen"}\n')
    for args, message in (
        (("related", "train", "--board-types", str(unknown)), "names a board of this catalog"),
        (("related", "train", "--board-types", str(tmp_path / "missing.jsonl")), "cannot read board types"),
        (("related", "train", "--features", "pixels"), "unknown feature set 'pixels'"),
        (("related", "show", rooms_first_product(), "-k", "0"), "-k"),
        (("eval", "related", str(IKEA), "--seeds", "x"), "--seeds"),
        (("eval", "related", str(tmp_path)), "products.jsonl"),
    ):
        answer = viscover(*args, home=home)
        assert answer.returncode == 2 and message in answer.stderr and "Traceback" not in answer.stderr, answer.stderr


def test_training_without_boards_says_so_before_any_work(indexed_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(indexed_home, home)  # Caltech-101 folders: categories, no boards
    answer = viscover("related", "train", home=home)
    assert answer.returncode == 2 and "no pin is saved to a board" in answer.stderr
    with Searcher(Settings.load(home)) as searcher:
        assert not searcher.catalog.feature_keys(visual_vectors(searcher)["logits"].model).size  # nothing extracted


def rooms_first_product() -> str:
    return json.loads((IKEA / "rooms.jsonl").read_text().splitlines()[0])["products"][0]
