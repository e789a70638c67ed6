"""Search words of raw Postfix lines, and the tsvector literal of a block of lines' words.

A word is a run of ASCII letters and digits, lower-cased. `mg_words` in the database splits text the
same way: `mg_words_query` makes a search term's words a query on the stored words, and
`mg_words_pattern` then checks a line for them adjacent and in order. Lines are indexed in blocks
(postfix_line_words: the distinct words of a few hundred consecutive lines): a busy server's lines
share most of their words, so a block holds a tenth of the index entries the same lines would hold
one by one. Computed here, off the database's core: PostgreSQL's text-search parser cost more than
the rest of loading a line, and it splits hex queue ids such as 0E873A0000C6 after the "0E873".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Runs longer than 200 characters split into pieces: a lexeme must stay far below PostgreSQL's 2 KB limit.
_WORD = re.compile(r"[a-z0-9]{1,200}")


def words_literal(messages: Iterable[str]) -> str:
    """The tsvector literal ("word other ...") of every word of the given lines, each once; any text
    in, never raises. One pass over the lines' text joined: a line break separates words anyway."""
    text = "\n".join(messages)
    if not text.isascii():
        text = text.encode("ascii", "replace").decode("ascii")
    return " ".join(set(_WORD.findall(text.lower())))
