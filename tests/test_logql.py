"""The LogQL parser (issue 22): what Grafana's Loki datasource sends parses, everything else is refused by name."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.parsers.logql import (
    MAX_QUERY_LENGTH,
    Constant,
    LineFilter,
    LogQLError,
    LogQuery,
    Matcher,
    RangeAggregation,
    VectorAggregation,
    parse,
)

POSTFIX = LogQuery((Matcher("service", "=", "postfix"),))


def test_grafana_explore_log_query_with_line_filter() -> None:
    assert parse('{service="postfix"} |= "reject"') == LogQuery(
        (Matcher("service", "=", "postfix"),), (LineFilter("|=", "reject"),)
    )


def test_grafana_log_volume_query_of_the_reference_sheet() -> None:
    query = 'sum by (level) (count_over_time({service="postfix"} [1m]))'
    assert parse(query) == VectorAggregation("sum", ("level",), RangeAggregation("count_over_time", POSTFIX, 60))


def test_grafana_log_volume_query_as_the_datasource_builds_it() -> None:
    """grafana/grafana public/app/plugins/datasource/loki/datasource.test.ts (getSupplementaryQuery), with
    $__auto interpolated; `| drop __error__` is a no-op here (no parsers, so no error labels)."""
    query = 'sum by (level, detected_level) (count_over_time({service="postfix"} | drop __error__[1m]))'
    assert parse(query) == VectorAggregation(
        "sum", ("level", "detected_level"), RangeAggregation("count_over_time", POSTFIX, 60)
    )
    custom_field = 'sum by (test) (count_over_time({label="value"} |= "x" | drop __error__, __error_details__[5m]))'
    parsed = parse(custom_field)
    assert isinstance(parsed, VectorAggregation) and parsed.by == ("test",)
    assert isinstance(parsed.inner, RangeAggregation)
    assert parsed.inner.query.filters == (LineFilter("|=", "x"),)


@pytest.mark.parametrize(
    "query",
    [
        '{label="value"}',  # logs sample of a metric query
        '{job="bar"}',  # data samples
        'count_over_time({a="b"}[1m])',
        'rate({label="value"}[5m])',
        '{foo="bar", foo2="bar2"}',  # imported abstract query
    ],
)
def test_other_queries_from_grafanas_datasource_tests(query: str) -> None:
    assert isinstance(parse(query), LogQuery | RangeAggregation)


@pytest.mark.parametrize("op", ["=", "!=", "=~", "!~"])
def test_every_label_matcher_operator(op: str) -> None:
    parsed = parse(f'{{service="postfix", level{op}"warn"}}')
    assert parsed == LogQuery((Matcher("service", "=", "postfix"), Matcher("level", op, "warn")))


def test_chained_line_filters_keep_their_order() -> None:
    parsed = parse('{service="postfix"} |= "reject" != "spamhaus" |~ "RCPT from .*" !~ "(?i)greylist"')
    assert isinstance(parsed, LogQuery)
    assert parsed.filters == (
        LineFilter("|=", "reject"),
        LineFilter("!=", "spamhaus"),
        LineFilter("|~", "RCPT from .*"),
        LineFilter("!~", "(?i)greylist"),
    )


def test_any_label_name_and_whitespace_and_newlines() -> None:
    parsed = parse('{ instance = "mx1" ,\n program=~"postfix/.+" }\n|= "x"')
    assert isinstance(parsed, LogQuery)
    assert parsed.matchers == (Matcher("instance", "=", "mx1"), Matcher("program", "=~", "postfix/.+"))


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"a\"b"', 'a"b'),
        (r'"tab\there"', "tab\there"),
        (r'"back\\slash"', "back\\slash"),
        (r'"\x41\101\u00e9\U0001F600"', "AAé😀"),
        (r'"\n\r\a\b\f\v"', "\n\r\a\b\f\v"),
        ('`raw \\d+ "quoted"`', 'raw \\d+ "quoted"'),
        ('"héllo"', "héllo"),
        ('""', ""),
    ],
)
def test_go_string_literals(literal: str, value: str) -> None:
    parsed = parse(f'{{service="postfix"}} |= {literal}')
    assert isinstance(parsed, LogQuery)
    assert parsed.filters == (LineFilter("|=", value),)


def test_backtick_regex_needs_no_double_escaping() -> None:
    parsed = parse(r'{service="postfix"} |~ `\[\d+\.\d+\.\d+\.\d+\]`')
    assert isinstance(parsed, LogQuery)
    assert parsed.filters[0].value == r"\[\d+\.\d+\.\d+\.\d+\]"


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [
        ("1m", 60),
        ("5m30s", 330),
        ("1h", 3600),
        ("1d", 86400),
        ("1w", 604800),
        ("1y", 31536000),
        ("500ms", 0.5),
        ("1h30m", 5400),
        ("90s", 90),
        ("1.5m", 90),
        (" 10s ", 10),
    ],
)
def test_durations(duration: str, seconds: float) -> None:
    parsed = parse(f'rate({{service="postfix"}}[{duration}])')
    assert isinstance(parsed, RangeAggregation)
    assert parsed.range_seconds == pytest.approx(seconds)


@pytest.mark.parametrize("func", ["count_over_time", "rate", "bytes_over_time"])
def test_range_functions(func: str) -> None:
    assert parse(f'{func}({{service="postfix"}} |= "x" [5m])') == RangeAggregation(
        func, LogQuery(POSTFIX.matchers, (LineFilter("|=", "x"),)), 300
    )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('sum(rate({service="postfix"}[1m]))', VectorAggregation("sum", (), RangeAggregation("rate", POSTFIX, 60))),
        ('count(rate({service="postfix"}[1m]))', VectorAggregation("count", (), RangeAggregation("rate", POSTFIX, 60))),
        (
            'sum(rate({service="postfix"}[1m])) by (level, program)',
            VectorAggregation("sum", ("level", "program"), RangeAggregation("rate", POSTFIX, 60)),
        ),
        (
            'sum by () (rate({service="postfix"}[1m]))',
            VectorAggregation("sum", (), RangeAggregation("rate", POSTFIX, 60)),
        ),
        (
            'count(sum by (level) (count_over_time({service="postfix"}[1m])))',
            VectorAggregation(
                "count", (), VectorAggregation("sum", ("level",), RangeAggregation("count_over_time", POSTFIX, 60))
            ),
        ),
        (
            '(sum by (level) ((rate({service="postfix"}[1m]))))',
            VectorAggregation("sum", ("level",), RangeAggregation("rate", POSTFIX, 60)),
        ),
    ],
)
def test_vector_aggregations(query: str, expected: VectorAggregation) -> None:
    assert parse(query) == expected


REFUSED = [
    ('{service="postfix"} | json', "json"),
    ('{service="postfix"} | logfmt', "logfmt"),
    ('{service="postfix"} | regexp "(?P<x>.*)"', "regexp"),
    ('{service="postfix"} | pattern "<_> <x>"', "pattern"),
    ('{service="postfix"} | unpack', "unpack"),
    ('{service="postfix"} | line_format "{{.x}}"', "line_format"),
    ('{service="postfix"} | label_format a=b', "label_format"),
    ('{service="postfix"} | level="error"', "label filter"),
    ('{service="postfix"} |= "x" | json | status >= 400', "json"),
    ('{service="postfix"} | drop level', "drop"),
    ('{service="postfix"} | keep level', "keep"),
    ('{service="postfix"} | decolorize', "decolorize"),
    ('sum(sum_over_time({service="postfix"} | unwrap bytes [1m]))', "unwrap"),
    ('sum by (level) (count_over_time({service="postfix"} | json [1m]))', "json"),
    ('{service="postfix"} |> "<_> reject <_>"', "pattern line filter"),
    ('{service="postfix"} |= "a" or "b"', "'or'"),
    ('sum without (level) (rate({service="postfix"}[1m]))', "without"),
    ('rate({service="postfix"}[1m] offset 1h)', "offset"),
    ('rate({service="postfix"}[1m]) > 5', "binary operation"),
    ('rate({service="postfix"}[1m]) / rate({service="dovecot"}[1m])', "binary operation"),
    ('sum(rate({service="postfix"}[1m])) and sum(rate({service="dovecot"}[1m]))', "'and'"),
    ('avg_over_time({service="postfix"}[1m])', "avg_over_time"),
    ('absent_over_time({service="postfix"}[1m])', "absent_over_time"),
    ('max by (level) (rate({service="postfix"}[1m]))', "max"),
    ('avg(rate({service="postfix"}[1m]))', "avg"),
    ('topk(5, rate({service="postfix"}[1m]))', "function 'topk' is not supported"),
    ("5", "number"),
    ("{}", "at least one"),
    ('{service=""}', "at least one"),
    ('{service=~".*"}', "at least one"),
    ('{service!="postfix"}', "at least one"),
    ('{service=~"(?=post)fix"}', "lookaround"),
    ('{service="postfix"} |~ "(?<!x)y"', "lookaround"),
    ('{service="postfix"} |~ "(a)\\\\1"', "back-reference"),
    ('{service="postfix"} |~ "(?P<a>x)(?P=a)"', "back-reference"),
    ('{service="postfix"} |~ "(unclosed"', "invalid regex"),
    ('{service=~"[z-a]"}', "invalid regex"),
    ('{service="postfix"} |= "bad \\q escape"', "escape"),
    ('rate({service="postfix"}[1x])', "invalid duration"),
    ('rate({service="postfix"}[0s])', "positive"),
    ('rate({service="postfix"}[])', "invalid duration"),
    ('rate({service="postfix"}[' + "9" * 400 + "y])", "at most 10y"),
    ('{service="postfix"', "end of query"),
    ('{service="postfix"} |= "unterminated', "syntax error"),
    ('rate({service="postfix"})', "syntax error"),
    ("", "syntax error"),
    ("service=postfix", "syntax error"),
]


@pytest.mark.parametrize(
    ("query", "value"),
    [
        ("vector(1)+vector(1)", 2.0),  # Grafana's health check (pkg/tsdb/loki/healthcheck.go)
        ("vector(1) + vector(2) * vector(3)", 7.0),
        ("(vector(1) + vector(2)) * vector(3)", 9.0),
        ("vector(7) / vector(2) - vector(0.5)", 3.0),
        ("vector(3)", 3.0),
    ],
)
def test_constant_arithmetic_is_folded(query: str, value: float) -> None:
    assert parse(query) == Constant(value)


def test_a_constant_divided_by_zero_is_nan_not_an_error() -> None:
    result = parse("vector(1) / vector(0)")
    assert isinstance(result, Constant) and result.value != result.value


def test_vector_is_still_a_label_name() -> None:
    assert parse('{vector="x"}') == LogQuery((Matcher("vector", "=", "x"),))


@pytest.mark.parametrize(("query", "named"), REFUSED)
def test_refused_queries_name_the_construct(query: str, named: str) -> None:
    with pytest.raises(LogQLError) as caught:
        parse(query)
    message = str(caught.value)
    assert named in message, message


def test_errors_say_where_like_loki() -> None:
    with pytest.raises(LogQLError, match=r"^parse error at line 1, col 21: pipeline stage '\| json'"):
        parse('{service="postfix"} | json')
    with pytest.raises(LogQLError, match=r"^parse error at line 2, col 1: "):
        parse('{service="postfix"}\n| logfmt')


def test_error_is_a_value_error() -> None:
    assert issubclass(LogQLError, ValueError)


def test_input_is_bounded() -> None:
    long_query = '{service="postfix"} |= "' + "x" * MAX_QUERY_LENGTH + '"'
    with pytest.raises(LogQLError, match="too long"):
        parse(long_query)
    nested = "sum(" * 20 + 'rate({service="postfix"}[1m])' + ")" * 20
    with pytest.raises(LogQLError, match="nested"):
        parse(nested)
    started = time.perf_counter()
    with pytest.raises(LogQLError):
        parse("(" * (MAX_QUERY_LENGTH - 1))
    many_filters = '{service="postfix"}' + ' |= "x"' * 700
    parsed = parse(many_filters)
    assert isinstance(parsed, LogQuery) and len(parsed.filters) == 700
    assert time.perf_counter() - started < 2


PIECES = [*'{}()[],|=!~"`\\ \nabcsumbycount_over_timerate5m1hjson$.*?<>+-', "sum", "by", "rate", '{a="b"}', "drop"]
ALPHABET = st.sampled_from(PIECES)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(ALPHABET, max_size=60).map("".join)))
def test_arbitrary_text_only_ever_raises_logql_error_and_fast(text: str) -> None:
    started = time.perf_counter()
    try:
        result = parse(text)
    except LogQLError:
        pass
    else:
        assert isinstance(result, LogQuery | RangeAggregation | VectorAggregation)
    assert time.perf_counter() - started < 0.5
