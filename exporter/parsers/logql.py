"""LogQL, the subset Grafana's Loki datasource sends, parsed into small frozen values (issue 22).

Why a grammar (lark, LALR, no recursion, linear time) and not regexes: the query text comes from whoever
can reach the Loki API, so it must be read exactly and everything outside the subset refused by name
rather than silently ignored. Supported:

* stream selectors ``{service="postfix", level=~"warn|err"}`` with ``=``, ``!=``, ``=~``, ``!~`` over any
  label name (the caller decides which labels exist);
* chained line filters ``|=``, ``!=``, ``|~``, ``!~`` with Go double-quoted strings (escapes) or backtick
  raw strings;
* ``count_over_time``, ``rate``, ``bytes_over_time`` over ``[duration]`` (Loki units ns..y, combined: 5m30s);
* ``sum`` and ``count`` with an optional ``by (labels)``, before or after the parenthesised argument;
* ``| drop __error__`` (and ``__error_details__``), which Grafana appends to its log-volume query: accepted
  and ignored, since without parsers no line ever carries an error label;
* constant arithmetic over ``vector(<number>)`` (``+ - * /``, parentheses), folded here into a `Constant`:
  Grafana's "Save & test" sends ``vector(1)+vector(1)`` and expects 2.

Refused with an error naming the construct: parsers and other pipeline stages (``| json``, ``| logfmt``,
``| line_format``, label filters ...), ``unwrap``, ``without``, ``offset``, binary operations, other functions.

Regular expressions: Loki uses RE2; the caller runs filters in PostgreSQL, whose regex engine would run
lookarounds and back-references (RE2 has neither, and they can backtrack badly), so those are refused, as
is any pattern Python's ``re`` cannot compile. Loki anchors label regexes (``=~"a|b"`` means ``^(?:a|b)$``)
but not line-filter regexes; the caller must do the same. Input is bounded (length, nesting) so a hostile
query cannot burn CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

MAX_QUERY_LENGTH = 5_000
MAX_NESTING = 8  # aggregations inside aggregations; Grafana's log volume needs 2
MAX_RANGE_SECONDS = 10 * 366 * 86400  # a range window longer than ten years is a typo or an attack

RANGE_FUNCTIONS = ("count_over_time", "rate", "bytes_over_time")
VECTOR_OPERATORS = ("sum", "count")


class LogQLError(ValueError):
    """A query outside the supported subset or not LogQL at all; the message is meant for the user."""


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a stream selector: ``name op "value"`` with op one of = != =~ !~."""

    name: str
    op: str
    value: str


@dataclass(frozen=True)
class LineFilter:
    """One line filter: op one of |= != |~ !~ applied to the log line."""

    op: str
    value: str


@dataclass(frozen=True)
class LogQuery:
    """A log query: the stream selector's matchers and the line filters, applied in order."""

    matchers: tuple[Matcher, ...]
    filters: tuple[LineFilter, ...] = ()


@dataclass(frozen=True)
class RangeAggregation:
    """``func(query [range])``: per stream, the lines (or bytes, or lines per second) in a sliding window."""

    func: str
    query: LogQuery
    range_seconds: float


@dataclass(frozen=True)
class VectorAggregation:
    """``op by (labels) (inner)``: sum or count of the inner vector, grouped by ``by`` (empty: one group)."""

    op: str
    by: tuple[str, ...]
    inner: MetricQuery


@dataclass(frozen=True)
class Constant:
    """A constant vector (``vector(1)+vector(1)``), already computed: one sample without labels."""

    value: float


MetricQuery = RangeAggregation | VectorAggregation

_GRAMMAR = r"""
?start: log_query | metric | constant
constant: const_sum
?const_sum: const_product | const_sum ADD_OP const_product
?const_product: const_atom | const_product MUL_OP const_atom
?const_atom: const_vector | "(" const_sum ")"
const_vector: VECTOR "(" NUMBER ")"
log_query: selector (line_filter | drop_errors)* stage*
selector: "{" [matcher ("," matcher)*] "}"
matcher: NAME (EQ | NEQ | RE | NRE) string
line_filter: (PIPE_EQ | NEQ | PIPE_RE | NRE) string
drop_errors: PIPE DROP ERROR_LABEL ("," ERROR_LABEL)*
stage: PIPE NAME
?metric: range_agg | vector_agg | "(" metric ")"
range_agg: NAME "(" log_query RANGE ")"
vector_agg: NAME grouping? "(" metric ")" grouping?
grouping: GROUP_KW "(" [NAME ("," NAME)*] ")"
string: DQ_STRING | RAW_STRING

GROUP_KW.2: "by" | "without"
VECTOR.2: "vector"
NUMBER: /[0-9]+(\.[0-9]+)?/
ADD_OP: "+" | "-"
MUL_OP: "*" | "/"
DROP.2: "drop"
ERROR_LABEL.2: "__error__" | "__error_details__"
NAME: /[a-zA-Z_][a-zA-Z0-9_]*/
EQ: "="
NEQ: "!="
RE: "=~"
NRE: "!~"
PIPE_EQ: "|="
PIPE_RE: "|~"
PIPE: "|"
DQ_STRING: /"(?:[^"\\\n]|\\[^\n])*"/
RAW_STRING: /`[^`]*`/
RANGE: /\[[^\]]*\]/
%ignore /[ \t\r\n]+/
"""

_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\", '"': '"'}
_ESCAPE = re.compile(r"\\(?:([abfnrtv\\\"])|x([0-9a-fA-F]{2})|([0-7]{3})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|(.?))")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w|y)")
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "y": 31536000,
}
_SUPPORTED = f"supported: {', '.join(RANGE_FUNCTIONS)}, {', '.join(VECTOR_OPERATORS)}, vector"
_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BACKREF = re.compile(r"\\[1-9]|\(\?P=|\\g<|\\k<")
_STAGES = {
    "json": "the json parser",
    "logfmt": "the logfmt parser",
    "regexp": "the regexp parser",
    "pattern": "the pattern parser",
    "unpack": "the unpack parser",
    "line_format": "line_format",
    "label_format": "label_format",
    "unwrap": "unwrap",
    "drop": "drop",
    "keep": "keep",
    "decolorize": "decolorize",
    "distinct": "distinct",
}


def parse(text: str) -> LogQuery | MetricQuery | Constant:
    """Parse one LogQL query; raise LogQLError naming what is wrong or unsupported."""
    if not isinstance(text, str):
        raise LogQLError("query must be a string")
    if len(text) > MAX_QUERY_LENGTH:
        raise LogQLError(f"query too long: {len(text)} characters, at most {MAX_QUERY_LENGTH}")
    if not text.strip():
        raise LogQLError("parse error at line 1, col 1: syntax error: unexpected end of query")
    try:
        return _PARSER.parse(text)
    except LogQLError:
        raise
    except UnexpectedInput as exc:
        raise LogQLError(_explain(text, exc)) from None


def _where(text: str, pos: int) -> str:
    """Loki's position prefix: line and column (1-based) of the offending character."""
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"parse error at line {line}, col {col}"


def _explain(text: str, exc: UnexpectedInput) -> str:
    """Name the unsupported construct at the error position, or fall back to Loki's syntax error.

    The grammar has already refused the query; these patterns only look at the text around the error
    position to say which construct it was (Loki's own wording names the token, which helps nobody)."""
    at_end = isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END")
    pos = len(text) if at_end else exc.pos_in_stream or 0
    where = _where(text, pos)
    before, rest = text[:pos].rstrip(), text[pos:]
    stage = re.search(r"\|\s*([A-Za-z_]\w*)$", before)
    if stage:
        return f"{_where(text, stage.start())}: {_stage_message(stage.group(1))}"
    word = re.match(r"[A-Za-z_]\w*", rest)
    if word and word.group() in ("without", "offset", "bool", "and", "or", "unless", "unwrap"):
        return f"{where}: {_keyword_message(word.group())}"
    if stage := re.match(r"\|\s*([A-Za-z_]\w*)", rest):
        return f"{where}: {_stage_message(stage.group(1))}"
    if rest.startswith(">") and before[-1:] in ("|", "!"):
        return f"{where}: pattern line filters (|> and !>) are not supported"
    if re.match(r"(==|!=|>=|<=|[-+*/%^<>])", rest) and before.endswith(")"):
        return f"{where}: binary operations are not supported"
    call = re.search(r"([A-Za-z_]\w*)\s*\(\s*$", before)
    if call and call.group(1) not in (*RANGE_FUNCTIONS, *VECTOR_OPERATORS) and re.match(r"[-+]?\d", rest):
        return f"{_where(text, call.start(1))}: function '{call.group(1)}' is not supported ({_SUPPORTED})"
    if re.match(r"[-+]?\d", rest):
        return f"{where}: number literals are not supported (no binary operations, no function parameters)"
    if at_end:
        return f"{where}: syntax error: unexpected end of query"
    if isinstance(exc, UnexpectedCharacters):
        return f"{where}: syntax error: unexpected character {rest[:1]!r}"
    token = exc.token if isinstance(exc, UnexpectedToken) else rest[:1]
    return f"{where}: syntax error: unexpected {str(token)!r}"


def _stage_message(name: str) -> str:
    """The error for a pipeline stage ``| name``: a known stage by its name, otherwise a label filter."""
    if name in _STAGES:
        return f"pipeline stage '| {name}' ({_STAGES[name]}) is not supported; only line filters are"
    return f"label filter '| {name} ...' is not supported (no parsers); only line filters are"


def _keyword_message(word: str) -> str:
    """The error for a keyword outside the subset."""
    if word == "without":
        return "'without' grouping is not supported; use 'by (labels)'"
    if word == "offset":
        return "'offset' is not supported"
    if word == "unwrap":
        return "'unwrap' is not supported"
    return f"'{word}' is not supported (neither between line filters nor as a binary operation)"


def _go_string(token: Token) -> str:
    """The value of a Go string literal: backtick strings are raw, double-quoted ones decode escapes."""
    raw = str(token)
    if raw.startswith("`"):
        return raw[1:-1]
    return _ESCAPE.sub(lambda m: _unescape(m, token), raw[1:-1])


def _unescape(match: re.Match[str], token: Token) -> str:
    """One Go escape sequence (strconv.Unquote's rules); an unknown one is an error, as in Loki."""
    simple, hex2, octal, u4, u8, bad = match.groups()
    if simple is not None:
        return _GO_ESCAPES[simple]
    if bad is not None:
        col = (token.column or 1) + 1 + match.start()
        raise LogQLError(f"parse error at line {token.line}, col {col}: invalid char escape '\\{bad}'")
    code = int(hex2 or u4 or u8, 16) if (hex2 or u4 or u8) else int(octal, 8)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or (octal and code > 255):
        raise LogQLError(f"parse error at line {token.line}: invalid escape '{match.group()}'")
    return chr(code)


def _check_regex(pattern: str, token: Token) -> None:
    """Refuse what RE2 refuses and PostgreSQL would run (lookarounds, back-references), and invalid patterns."""
    where = f"parse error at line {token.line}, col {token.column}"
    if _LOOKAROUND.search(pattern):
        raise LogQLError(f"{where}: invalid regex {pattern!r}: lookarounds are not supported (RE2 syntax)")
    if _BACKREF.search(pattern):
        raise LogQLError(f"{where}: invalid regex {pattern!r}: back-references are not supported (RE2 syntax)")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise LogQLError(f"{where}: invalid regex {pattern!r}: {exc}") from None


def _duration(token: Token) -> float:
    """Seconds of a range ``[5m30s]``; Loki's units, combined largest first, positive."""
    body = str(token)[1:-1].strip()
    where = f"parse error at line {token.line}, col {token.column}"
    parts = _DURATION_PART.findall(body)
    if not body or "".join(n + u for n, u in parts) != body:
        raise LogQLError(f"{where}: invalid duration {body!r} (expected e.g. 1m, 5m30s, 1h, 1d)")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if not 0 < seconds <= MAX_RANGE_SECONDS:
        raise LogQLError(f"{where}: invalid duration {body!r}: the range must be positive and at most 10y")
    return seconds


def _empty_compatible(matcher: Matcher) -> bool:
    """Whether the matcher also matches a stream without the label (so it cannot select streams alone)."""
    if matcher.op == "=":
        return matcher.value == ""
    if matcher.op == "=~":
        return re.fullmatch(matcher.value, "") is not None
    return True


@v_args(inline=True)
class _Build(Transformer):
    """Turns each grammar rule into its value as the LALR parser reduces it (refusals raise at once)."""

    def string(self, token: Token) -> tuple[str, Token]:
        return _go_string(token), token

    def matcher(self, name: Token, op: Token, value: tuple[str, Token]) -> Matcher:
        if op in ("=~", "!~"):
            _check_regex(value[0], value[1])
        return Matcher(str(name), str(op), value[0])

    def line_filter(self, op: Token, value: tuple[str, Token]) -> LineFilter:
        if op in ("|~", "!~"):
            _check_regex(value[0], value[1])
        return LineFilter(str(op), value[0])

    def stage(self, pipe: Token, name: Token) -> None:
        raise LogQLError(f"{_where_token(pipe)}: {_stage_message(str(name))}")

    def drop_errors(self, *_tokens: Token) -> None:
        """``| drop __error__``, which Grafana appends to its log-volume query: a no-op without parsers."""
        return None

    def selector(self, *matchers: Matcher | None) -> tuple[Matcher, ...]:
        return tuple(m for m in matchers if m is not None)

    def log_query(self, matchers: tuple[Matcher, ...], *filters: LineFilter | None) -> LogQuery:
        if all(_empty_compatible(m) for m in matchers):
            raise LogQLError(
                "queries require at least one regexp or equality matcher that does not have an "
                'empty-compatible value. For instance, app=~".*" does not meet this requirement, '
                'but app=~".+" will'
            )
        return LogQuery(matchers, tuple(f for f in filters if f is not None))

    def const_vector(self, _keyword: Token, number: Token) -> float:
        return float(number)

    def const_sum(self, left: float, op: Token, right: float) -> float:
        return left + right if op == "+" else left - right

    def const_product(self, left: float, op: Token, right: float) -> float:
        if op == "*":
            return left * right
        return left / right if right else float("nan")  # PromQL: x/0 is NaN (or ±Inf); never an error

    def constant(self, value: float) -> Constant:
        return Constant(value)

    def range_agg(self, name: Token, query: LogQuery, window: Token) -> RangeAggregation:
        if name not in RANGE_FUNCTIONS:
            raise LogQLError(
                f"{_where_token(name)}: function '{name}' is not supported "
                f"(supported: {', '.join(RANGE_FUNCTIONS)}, {', '.join(VECTOR_OPERATORS)})"
            )
        return RangeAggregation(str(name), query, _duration(window))

    def grouping(self, keyword: Token, *labels: Token | None) -> tuple[str, ...]:
        if keyword == "without":
            raise LogQLError(f"{_where_token(keyword)}: {_keyword_message('without')}")
        return tuple(str(label) for label in labels if label is not None)

    def vector_agg(self, name: Token, *args: Any) -> VectorAggregation:
        if name not in VECTOR_OPERATORS:
            raise LogQLError(
                f"{_where_token(name)}: aggregation '{name}' is not supported "
                f"(supported: {', '.join(VECTOR_OPERATORS)})"
            )
        groupings = [a for a in args if isinstance(a, tuple)]
        inner = next(a for a in args if isinstance(a, RangeAggregation | VectorAggregation))
        if len(groupings) > 1:
            raise LogQLError(f"{_where_token(name)}: 'by' given twice")
        if _depth(inner) >= MAX_NESTING:
            raise LogQLError(f"{_where_token(name)}: aggregations nested deeper than {MAX_NESTING}")
        return VectorAggregation(str(name), groupings[0] if groupings else (), inner)


def _where_token(token: Token) -> str:
    """Loki's position prefix for a token."""
    return f"parse error at line {token.line}, col {token.column}"


def _depth(query: MetricQuery) -> int:
    """How many vector aggregations wrap the range aggregation."""
    depth = 0
    while isinstance(query, VectorAggregation):
        depth, query = depth + 1, query.inner
    return depth


_PARSER = Lark(_GRAMMAR, parser="lalr", transformer=_Build(), maybe_placeholders=True, propagate_positions=False)
