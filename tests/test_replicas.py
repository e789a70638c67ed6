"""Several replicas scraped: every dashboard panel and alert shows each figure once.

Every replica reads the same PostgreSQL, so each one Prometheus scrapes reports the same figures
under its own `instance` label. Checked two ways: every PromQL expression takes the max across
replicas before it adds series up (static, on the parsed expressions), and for real: two replicas
of the app over one database, one Prometheus scraping one of them and one scraping both, every
panel and alert figure evaluated on both at the same instant.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import promql_parser
import pytest
import yaml

from dashboards.kit import REPLICA_LABELS
from exporter.app import create_app
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.readmodels.metrics import PROCESS_FAMILIES
from exporter.services.dmarc import import_bytes
from exporter.store.database import create_pool
from exporter.worker.loop import Worker, tracked
from tests.conftest import SIM_START, LiveServer, make_config
from tests.dns_server import SIMULATED_ZONE, running_dns
from tests.mailflow import scenario
from tests.prometheus import running_prometheus, scraped
from tests.test_dashboards import promql
from tests.test_metrics import samples

ROOT = Path(__file__).parent.parent
RULES = ROOT / "provisioning" / "prometheus" / "rules" / "mailcow-alerts.yml"
PER_REPLICA = {"up", *PROCESS_FAMILIES}  # a replica's own health: per instance on purpose
COUNTER_SAMPLES = ("_total", "_bucket", "_count", "_sum")


def dashboard_exprs() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every target, annotation and variable of every dashboard (LogQL targets of the
    Loki datasource are not PromQL: tests/test_dashboards.py parses them)."""

    def walk(node: object, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str) and node.get("datasource", {}).get("type") != "loki":
                yield where, promql(node["expr"])
            for value in node.values():
                yield from walk(value, f"{where} / {node['title']}" if "title" in node else where)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, where)

    for path in sorted((ROOT / "dashboards").glob("*.json")):
        yield from walk(json.loads(path.read_text()), path.name)


def alert_exprs() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def children(node: object) -> Iterator[object]:
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None:
            yield child
    yield from getattr(node, "args", None) or ()


def selectors(node: object, path: tuple = ()) -> Iterator[tuple[promql_parser.VectorSelector, tuple]]:
    """Every vector selector with the nodes enclosing it, outermost first."""
    if isinstance(node, promql_parser.VectorSelector):
        yield node, path
    for child in children(node):
        yield from selectors(child, (*path, node))


def collapses_replicas(node: promql_parser.AggregateExpr) -> bool:
    """A max whose grouping drops every replica label."""
    if str(node.op) != "max":
        return False
    if node.modifier is None:
        return True
    labels = set(node.modifier.labels)
    if node.modifier.type == promql_parser.AggModifierType.Without:
        return set(REPLICA_LABELS) <= labels
    return not labels & set(REPLICA_LABELS)


def replica_problem(name: str, path: tuple) -> str | None:
    """Why the selector `name` (enclosed by `path`) would count a figure once per replica, if it does."""
    for depth in range(len(path) - 1, -1, -1):
        if isinstance(path[depth], promql_parser.AggregateExpr):
            aggregation, between = path[depth], path[depth + 1 :]
            break
    else:
        return "is never aggregated across replicas"
    if not collapses_replicas(aggregation):
        grouping = f" {aggregation.modifier}" if aggregation.modifier else ""
        return f"is first aggregated by {aggregation.op}{grouping}, not by a max across replicas"
    if any(
        not isinstance(n, promql_parser.Call | promql_parser.MatrixSelector | promql_parser.ParenExpr) for n in between
    ):
        return "is combined with something else before the max across replicas"
    rated = any(isinstance(n, promql_parser.Call) and n.func.name in ("rate", "increase", "irate") for n in between)
    if name.endswith(COUNTER_SAMPLES) and not rated:
        return "is a counter whose max across replicas is taken before rate()/increase() (a dip reads as a reset)"
    return None


def test_every_panel_and_alert_expression_takes_the_max_across_replicas_first():
    checked, problems = 0, []
    for where, expr in [*dashboard_exprs(), *alert_exprs()]:
        for selector, path in selectors(promql_parser.parse(expr)):
            assert selector.name.startswith("mailcow_") or selector.name in PER_REPLICA, (where, selector.name)
            if selector.name in PER_REPLICA:
                continue
            problem = replica_problem(selector.name, path)
            if problem:
                problems.append(f"{where}: {selector.name} {problem}")
            checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 50


def test_the_check_catches_expressions_that_add_replicas_up():
    """The static check above fails on each way of counting a figure once per replica."""
    bad = [
        "sum(increase(mailcow_messages_total[1h]))",
        "sum by (job, instance) (mailcow_queue_messages) > 50",
        "mailcow_container_up == 0",
        "count(mailcow_api_up == 0)",
        "sum(max by (instance) (rate(mailcow_netfilter_bans_total[5m])))",
        "increase(max without (instance, pod) (mailcow_messages_total)[1h:])",
        "sum(max without (instance) (mailcow_quarantine_messages))",
    ]
    for expr in bad:
        found = [replica_problem(s.name, path) for s, path in selectors(promql_parser.parse(expr))]
        assert any(found), expr


# --- for real: two replicas, a Prometheus scraping one of them and one scraping both ------------------


def figures(expr: str) -> list[str]:
    """The expression and every operand of its binary operations: what panels show and alerts compare."""
    out: list[str] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.NumberLiteral | promql_parser.StringLiteral):
            return
        if any(True for _ in selectors(node)):
            out.append(str(node))
        if isinstance(node, promql_parser.BinaryExpr):
            visit(node.lhs)
            visit(node.rhs)
        elif isinstance(node, promql_parser.ParenExpr):
            visit(node.expr)

    visit(promql_parser.parse(expr))
    return out


def query(api: str, expr: str, at: float) -> dict[frozenset, float]:
    body = httpx.get(f"{api}/query", params={"query": expr, "time": at}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    result = body["data"]["result"]
    if body["data"]["resultType"] == "scalar":
        return {frozenset(): float(result[1])}
    return {frozenset(r["metric"].items()): float(r["value"][1]) for r in result}


def inbound_total(url: str) -> float:
    found = samples(httpx.get(f"{url}/metrics", timeout=10).text)
    return sum(
        v
        for (name, labels), v in found.items()
        if name == "mailcow_messages_total" and ("direction", "inbound") in labels
    )


@pytest.fixture(scope="module")
def scraped_twice(databases, tmp_path_factory):
    """Mail, DMARC, DNS checks and job runs arriving while one Prometheus scrapes replica A and another A and B."""
    with (
        scenario(databases, start=SIM_START, rate=200, seed=23) as (rig, pool, url),
        running_dns(SIMULATED_ZONE) as dns,
    ):
        rig.run(300, 30)
        worker = Worker(make_config(url, dns_resolvers=[f"127.0.0.1:{dns}"]), pool, rig.ingestor.client)
        for job, run in (("sync_domains", worker.sync_domains), ("dns_check", worker.dns_check)):
            tracked(pool, job, run)()
        with rig.sim.state.lock:  # a container down, counted once
            next(iter(rig.sim.state.containers.values()))["state"] = "exited"
        for job, run in (("sync_status", worker.sync_status), ("sync_quarantine", worker.sync_quarantine)):
            tracked(pool, job, run)()
        pools = [create_pool(url, 2) for _ in range(2)]  # two replicas: own pools, one database
        replicas = [LiveServer(create_app(make_config(url), p)) for p in pools]
        tmp = tmp_path_factory.mktemp("prometheus")
        (tmp / "single").mkdir()
        (tmp / "pair").mkdir()
        try:
            with (
                running_prometheus(tmp / "single", replicas[0].url, rule_files=[RULES]) as single,
                running_prometheus(tmp / "pair", [r.url for r in replicas], rule_files=[RULES]) as pair,
            ):
                assert scraped(single, 1) and scraped(pair, 2), "Prometheus did not scrape the replicas"
                before = inbound_total(replicas[0].url)
                for _ in range(6):  # traffic while both scrape: counters rise between scrapes
                    rig.step(30)
                    time.sleep(1)
                rig.step(600)  # more lines than mailcow's capped list keeps: an ingest gap
                rig.sim.state.fault = "server_error"  # a failing job, and the mailcow API down
                tracked(pool, "sync_status", worker.sync_status)()
                rig.sim.state.fault = None
                with pytest.raises(InvalidReport):
                    import_bytes(pool, b"not a report", "junk.xml")
                truth = inbound_total(replicas[0].url) - before
                time.sleep(4)  # both have scraped and evaluated the rules since
                yield {
                    "single": single,
                    "pair": pair,
                    "at": time.time(),
                    "inbound": truth,
                    "replicas": [r.url for r in replicas],
                }
        finally:
            for server in replicas:
                server.stop()
            for p in pools:
                p.close()


def compare(where: str, expr: str, run: dict) -> bool:
    """Assert the figure is the same scraping A and B as scraping A alone; True when it is not zero."""
    single, pair = query(run["single"], expr, run["at"]), query(run["pair"], expr, run["at"])
    assert set(pair) == set(single), f"{where}: {expr}\n  one replica: {single}\n  two replicas: {pair}"
    for labels, value in single.items():
        if math.isnan(value):
            assert math.isnan(pair[labels]), (where, expr, dict(labels))
        else:  # the two servers scrape at their own instants: rates differ by a scrape's extrapolation
            assert pair[labels] == pytest.approx(value, rel=0.1), (where, expr, dict(labels), pair[labels], value)
    return any(v != 0 and not math.isnan(v) for v in single.values())


def per_replica(expr: str) -> bool:
    return any(s.name in PER_REPLICA for s, _ in selectors(promql_parser.parse(expr)))


def compare_all(exprs: Iterable[tuple[str, str]], scraped: dict) -> tuple[int, int]:
    """(figures compared, figures that were not zero) over every store-backed figure of `exprs`."""
    compared, nonzero = 0, 0
    for where, expr in exprs:
        for figure in figures(expr):
            if not per_replica(figure):
                nonzero += compare(where, figure, scraped)
                compared += 1
    return compared, nonzero


def test_every_panel_shows_the_same_figures_with_two_replicas_as_with_one(scraped_twice):
    compared, nonzero = compare_all(dashboard_exprs(), scraped_twice)
    assert compared >= 30 and nonzero >= 25, (compared, nonzero)


def test_every_alert_figure_is_the_same_with_two_replicas_as_with_one(scraped_twice):
    compared, nonzero = compare_all(alert_exprs(), scraped_twice)
    assert compared >= 40 and nonzero >= 10, (compared, nonzero)


def test_the_same_alerts_are_raised_once_with_two_replicas(scraped_twice):
    single = query(scraped_twice["single"], "ALERTS", scraped_twice["at"])
    pair = query(scraped_twice["pair"], "ALERTS", scraped_twice["at"])
    names = {dict(labels)["alertname"] for labels in single}
    assert {"MailcowContainerDown", "MailcowApiUnreachable", "MailcowGrafanaIngestGaps"} <= names
    assert sorted(map(dict, pair), key=str) == sorted(map(dict, single), key=str)


def test_the_overview_counts_the_inbound_messages_once(scraped_twice):
    expr = next(e for where, e in dashboard_exprs() if where.endswith("/ Inbound messages"))
    (counted,) = query(scraped_twice["pair"], expr, scraped_twice["at"]).values()
    assert scraped_twice["inbound"] > 100
    assert counted == pytest.approx(scraped_twice["inbound"], rel=0.1)


def test_replicas_differ_only_in_the_families_about_themselves(scraped_twice):
    """The premise of the max across replicas: B reports what A reports just before and after it."""
    a, b = scraped_twice["replicas"]
    before, other, after = (samples(httpx.get(f"{url}/metrics", timeout=10).text) for url in (a, b, a))
    assert set(before) == set(other) == set(after)
    for key, value in other.items():
        if key[0] not in PROCESS_FAMILIES:  # gauges of elapsed time (lag, queue age) grow between scrapes
            assert min(before[key], after[key]) <= value <= max(before[key], after[key]), key
