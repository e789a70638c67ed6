"""Search words of raw Postfix lines and rspamd rows, as tsvector literals.

A word is a run of ASCII letters and digits, lower-cased. `mg_words` in the database splits text the
same way: `mg_words_query` makes a search term's words a query on the stored words, and
`mg_words_pattern` then checks a line for them adjacent and in order. Lines are indexed in blocks
(postfix_line_words: the distinct words of a few hundred consecutive lines): a busy server's lines
share most of their words, so a block holds a tenth of the index entries the same lines would hold
one by one. rspamd rows store the words of their subject, sender and Message-ID. Computed here, off
the database's core: PostgreSQL's text-search parser cost more than the rest of loading a line, and
it splits hex queue ids such as 0E873A0000C6 after the "0E873".
"""

from __future__ import annotations

from collections.abc import Iterable

# Bytes to themselves lower-cased for ASCII letters and digits, to a space for everything else: after
# this one table lookup per byte, a plain split() yields the words (a regular expression costs twice).
_WORD_BYTES = bytes(c if chr(c).isascii() and chr(c).isalnum() else 32 for c in range(256)).lower()
# Runs longer than this split into pieces: a lexeme must stay far below PostgreSQL's 2 KB limit.
_MAX_WORD = 200


def _runs(text: str) -> list[bytes]:
    """The runs of ASCII letters and digits in `text`, lower-cased (any other character separates)."""
    return text.encode("ascii", "replace").translate(_WORD_BYTES).split()


def word_count(text: str) -> int:
    """How many words `text` has, as mg_words counts them (a long run is several words)."""
    return sum(-(-len(run) // _MAX_WORD) for run in _runs(text))


def words_literal(messages: Iterable[str]) -> str:
    """The tsvector literal ("word other ...") of every word of the given lines, each once; any text
    in, never raises. One pass over the lines' text joined: a line break separates words anyway."""
    words = set(_runs("\n".join(messages)))
    if max(map(len, words), default=0) > _MAX_WORD:
        for word in [w for w in words if len(w) > _MAX_WORD]:
            words.discard(word)
            words.update(word[i : i + _MAX_WORD] for i in range(0, len(word), _MAX_WORD))
    return b" ".join(words).decode("ascii")
