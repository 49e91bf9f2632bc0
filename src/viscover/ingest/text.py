"""A pin's text as terms: words and phrases of up to three words from its description, boards and category,
English stop words left out, tokenized by scikit-learn's vectorizer (imported when text is first analyzed,
so a search that needs no text never pays for it)."""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Callable, Iterable

from viscover.errors import BadArgumentError

MAX_NGRAM = 3


@functools.cache
def _analyzer() -> Callable[[str], list[str]]:
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(ngram_range=(1, MAX_NGRAM), stop_words="english").build_analyzer()


def pin_terms(description: str, boards: Iterable[str], category: str | None) -> Counter[str]:
    """How often each term occurs in a pin's text; phrases never run from one board or field into the next."""
    analyze = _analyzer()
    terms: Counter[str] = Counter(analyze(description))
    for field in (*boards, category or ""):
        terms.update(analyze(field))
    return terms


def as_term(text: str | None) -> str | None:
    """Words as the one term the analyser makes of them, as annotations carry it ("Casual Shoes" → "casual
    shoes"), or None when they make no term (only stop words, or more than three words)."""
    found = words(text or "")
    return " ".join(found) if 0 < len(found) <= MAX_NGRAM else None


def user_term(text: str) -> str:
    """A term a user clicked or typed (to narrow or steer results), written as annotations write it; words that
    make no term are an error naming them."""
    term = as_term(text)
    if term is None:
        raise BadArgumentError(f"term: {text!r} is no annotation: give one to three words, not only stop words")
    return term


def words(text: str) -> list[str]:
    """The text's words as the analyser keeps them (lower case, stop words left out), in order."""
    return [term for term in _analyzer()(text) if " " not in term]  # the words, in order, come first


def fts_query(text: str, any_word: bool = False) -> str:
    """A user's words as an FTS5 query that cannot be a syntax error: each word quoted (a bare `t-shirt` or
    `AND(` would be one), all required unless `any_word`."""
    words = [word.replace('"', '""') for word in re.split(r"[\s\x00-\x1f\x7f]+", text) if word]  # NUL ends a string
    return (" OR " if any_word else " ").join(f'"{word}"' for word in words)
