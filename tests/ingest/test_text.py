"""A pin's text as terms and as a full-text index, kept right through adds, updates and deletes."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from viscover.ingest import Catalog, Pin
from viscover.ingest.text import as_term, pin_terms


def make_pin(pin_id: str, description: str, boards: tuple[str, ...] = (), category: str | None = None) -> Pin:
    return Pin(pin_id, f"/images/{pin_id}.jpg", f"sha-{pin_id}", 10, 10, description, boards, category)


def recount(path: Path) -> tuple[dict[str, int], dict[str, int]]:
    """Document frequencies as stored, and as counted afresh from the pins' term rows."""
    db = sqlite3.connect(path)
    stored = {term: df for term, df in db.execute("SELECT term, df FROM terms") if df}
    counted = Counter(term for (term,) in db.execute("SELECT t.term FROM pin_terms pt JOIN terms t ON t.id = pt.term"))
    return stored, dict(counted)


def test_terms_are_words_and_phrases_of_each_field() -> None:
    terms = pin_terms("A navy blue cotton shirt", ("summer looks",), "Shirts")
    assert terms["navy blue"] == 1 and terms["navy blue cotton"] == 1 and terms["shirt"] == 1
    assert "a" not in terms and "shirt summer" not in terms  # stop words out; phrases stay inside one field


def test_term_counts_stay_right_through_add_update_and_delete(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(make_pin("a", "red cotton shirt", ("summer",), "shirts"))
    catalog.add(make_pin("b", "blue cotton jeans", ("denim",), "jeans"))
    b = catalog.get("b")
    stored, counted = recount(tmp_path / "c.db")
    assert stored == counted and stored["cotton"] == 2 and stored["red cotton shirt"] == 1
    catalog.update(b.key, description="blue linen jeans", boards=("summer",))
    stored, counted = recount(tmp_path / "c.db")
    assert stored == counted and stored["cotton"] == 1 and stored["summer"] == 2 and stored["linen"] == 1
    catalog.delete(["a"])
    stored, counted = recount(tmp_path / "c.db")
    assert stored == counted and "cotton" not in stored and stored["summer"] == 1
    assert catalog.term_counts([b.key], min_df=1)[b.key]["linen jeans"] == (1, 1)


def test_keyword_search_ranks_by_bm25_and_follows_every_change(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    for pin_id, text in (("a", "red shirt"), ("b", "red red red shirt"), ("c", "green hat")):
        catalog.add(make_pin(pin_id, text))
    keys = {p.pin_id: p.key for p in catalog}
    assert [key for key, _ in catalog.text_search("red shirt", 10)] == [keys["b"], keys["a"]]
    catalog.update(keys["c"], boards=("red hats",))  # boards are searchable too
    assert {key for key, _ in catalog.text_search("red", 10)} == {keys["a"], keys["b"], keys["c"]}
    catalog.delete(["b"])
    assert [key for key, _ in catalog.text_search("shirt", 10)] == [keys["a"]]
    assert catalog.text_search("green hat shirt", 10, any_word=True)[0][0] == keys["c"]


@pytest.mark.parametrize(
    "words",
    [
        "t-shirt",
        "AND(",
        "NEAR(a b)",
        '"',
        '""',
        "shirt*",
        "description:red",
        "^red",
        "x OR",
        "(",
        "ünïcödé",
        "red\x00shirt",
        "\x00",
        "\u2028",
    ],
)
def test_words_that_would_break_fts5_syntax_are_searched_as_words(tmp_path: Path, words: str) -> None:
    catalog = Catalog(tmp_path / "c.db")
    catalog.add(make_pin("a", "a red t-shirt, not a hat"))
    assert isinstance(catalog.text_search(words, 5), list)  # no syntax error, whatever the words
    assert [key for key, _ in catalog.text_search("t-shirt", 5)] == [catalog.get("a").key]


def test_the_dictionary_is_built_only_when_asked(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "c.db")
    for n in range(3):
        catalog.add(make_pin(f"p{n}", "red shirt" if n < 2 else "blue shirt"))
    key = catalog.get("p2").key
    assert set(catalog.term_counts([key], min_df=2)[key]) == {"shirt"}  # no dictionary yet: df >= min_df
    assert catalog.build_dictionary(min_df=3) == 1
    catalog.add(make_pin("p3", "blue hat"))  # now blue reaches df 2, but the dictionary stays as built
    assert set(catalog.term_counts([key], min_df=1)[key]) == {"shirt"}


def test_words_as_the_one_term_annotations_carry() -> None:
    assert as_term("Casual Shoes") == "casual shoes" and as_term("Pagoda") == "pagoda"
    assert as_term("Hat and coat stand") == "hat coat stand"  # stop words go, as in the pins' terms
    assert as_term("the and") is None and as_term("red green blue yellow") is None and as_term(None) is None
