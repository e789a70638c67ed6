"""Search words of a raw Postfix line, as the tsvector literal stored in postfix_lines.words.

A word is a run of ASCII letters and digits, lower-cased; each distinct word is listed once,
without positions. `mg_words` in the database splits text the same way: `mg_line_words` is this
function in SQL, `mg_words_query` makes a search term's words a query on the index, and
`mg_words_pattern` checks that they are adjacent and in order in the line itself. Computed here, off
the database's core, because PostgreSQL's text-search parser cost more than the rest of loading a
line, and it splits hex queue ids such as 0E873A0000C6 after the "0E873". Positions would make
PostgreSQL parse and store about twice as much per line, for a check that only multi-word searches
need.
"""

from __future__ import annotations

import re

# Runs longer than 200 characters split into pieces: a lexeme must stay far below PostgreSQL's 2 KB limit.
_WORD = re.compile(r"[a-z0-9]{1,200}")
MAX_WORDS = 16383  # words after this many in one line are not indexed (as when positions were stored)


def line_words(message: str) -> str:
    """The tsvector literal ("word other ...") of one line; any text in, never raises."""
    text = message if message.isascii() else message.encode("ascii", "replace").decode("ascii")
    return " ".join(set(_WORD.findall(text.lower())[:MAX_WORDS]))
