"""Three-character substrings ("grams") of log text, as tsvector and tsquery literals. Pure.

The raw log search index (raw_line_blocks) stores the grams of a block of lines; a substring search
needs every gram of its term, so the GIN index narrows a search to the blocks that can hold the term
before PostgreSQL checks their lines (the embedded PostgreSQL has no pg_trgm). ASCII letters are
folded to lower case on both sides, so one index serves case-sensitive (LogQL `|=`) and
case-insensitive (REST `search`) matching: the index only pre-selects, the lines are always checked.
"""

from __future__ import annotations

import string
from collections.abc import Iterable

SIZE = 3
MAX_GRAMS = 50_000  # per block: at most 16 bytes each, a tsvector stays below PostgreSQL's 1 MB
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold(text: str) -> str:
    """ASCII letters lower-cased, everything else as it is."""
    return text.translate(_FOLD)


def grams(text: str) -> set[str]:
    """Every SIZE-character substring of the folded text."""
    folded = fold(text)
    return {folded[i : i + SIZE] for i in range(len(folded) - SIZE + 1)}


def block_grams(messages: Iterable[str]) -> set[str]:
    """The grams of several lines, in one pass over their text joined by line breaks (the grams that
    span two lines only widen what the index pre-selects)."""
    return grams("\n".join(messages))


def _quote(gram: str) -> str:
    return "'" + gram.replace("\\", "\\\\").replace("'", "''") + "'"


def vector_literal(found: Iterable[str]) -> str:
    """A tsvector literal holding each gram once."""
    return " ".join(_quote(g) for g in sorted(found))


def query_literal(needed: Iterable[str]) -> str | None:
    """A tsquery literal matching blocks that hold every one of the grams; None for none (terms shorter
    than SIZE), so the caller searches without the index."""
    return " & ".join(_quote(g) for g in sorted(set(needed))) or None
