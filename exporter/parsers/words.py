"""Search words of a raw Postfix line, as the tsvector literal stored in postfix_lines.words.

A word is a run of ASCII letters and digits, lower-cased and numbered from 1 in line order;
`mg_words_query` in the database splits a search term the same way (and `mg_line_words` is this
function in SQL, for rows stored before the column existed). Computed here, off the database's
core, because PostgreSQL's text-search parser cost more than the rest of loading a line, and it
splits hex queue ids such as 0E873A0000C6 after the "0E873".
"""

from __future__ import annotations

import re

# Runs longer than 200 characters split into pieces: a lexeme must stay far below PostgreSQL's 2 KB limit.
_WORD = re.compile(r"[a-z0-9]{1,200}")
MAX_POSITION = 16383  # the highest word position a tsvector stores
_POSITIONS = tuple(f":{n}" for n in range(1, MAX_POSITION + 1))


def line_words(message: str) -> str:
    """The tsvector literal ("word:1 other:2 word:3 ...") of one line; any text in, never raises.

    Repeated words are listed once per position; PostgreSQL merges them when it reads the literal.
    """
    text = message if message.isascii() else message.encode("ascii", "replace").decode("ascii")
    return " ".join(map(str.__add__, _WORD.findall(text.lower()), _POSITIONS))  # stops at the last position
