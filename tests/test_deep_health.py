"""`/api/health?deep=1` (issue 23, "Operations"): timed checks of the database, the workers, mailcow and
the disk for signed-in callers; anonymous callers still get only the verdict; a bad `deep` is a 400."""

from __future__ import annotations

import base64
import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import create_app
from exporter.mailcow.client import MailcowClient
from exporter.services.ingestor import Ingestor
from exporter.store import jobs as job_store
from exporter.store.database import create_pool
from tests.conftest import RO_KEY, RW_KEY, make_config
from tests.mailflow import COUNTS

PASSWORD = "correct horse battery staple"
CHECKS = ["database", "worker_lag", "mailcow", "disk"]


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def _checks(body: dict) -> dict[str, dict]:
    assert [check["name"] for check in body["checks"]] == CHECKS
    for check in body["checks"]:
        assert check["status"] in ("ok", "failed") and check["detail"] and check["duration_ms"] >= 0
    return {check["name"]: check for check in body["checks"]}


def test_a_deep_probe_with_everything_up_is_healthy_with_each_check(db_url, pool, mailcow, tmp_path):
    Ingestor(MailcowClient(mailcow.url, RO_KEY), pool, COUNTS, max_interval=60).fetch_all()
    job_store.job_started(pool, "complete_correlations", datetime.now(UTC))
    job_store.job_finished(pool, "complete_correlations", datetime.now(UTC), 0.1, None)
    # the embedded database's directory (DATABASE_URL unset); the pool is the test database all the same
    config = dataclasses.replace(make_config(db_url, mailcow.url), database_url=None, data_dir=str(tmp_path))
    response = create_app(config, pool).test_client().get("/api/health?deep=1")
    body = response.get_json()
    checks = _checks(body)
    assert checks["database"]["status"] == "ok"
    assert checks["worker_lag"]["detail"].startswith("keeping up (last success: postfix ")
    assert checks["mailcow"] == checks["mailcow"] | {"status": "ok", "detail": "answers (version 2026-07a)"}
    assert checks["disk"]["status"] == "ok" and "GiB free of" in checks["disk"]["detail"]
    # no worker holds the ingest lock here: that alone keeps the plain verdict degraded
    assert response.status_code == 200
    assert body["reasons"] == ["no worker holds the ingest lock: is the worker running?"]


def test_mailcow_down_degrades_the_deep_verdict_and_names_only_the_error_class(db_url, pool):
    secret_url = "http://monitor:pa55-w0rd@127.0.0.1:9"  # nothing listens on port 9
    response = create_app(make_config(db_url, secret_url), pool).test_client().get("/api/health?deep=true")
    body = response.get_json()
    checks = _checks(body)
    assert response.status_code == 200 and body["status"] == "degraded"
    assert checks["mailcow"]["status"] == "failed"
    assert checks["mailcow"]["detail"] == "not reachable (MailcowUnreachable)"
    assert "mailcow: not reachable (MailcowUnreachable)" in body["reasons"]
    assert checks["worker_lag"]["status"] == "failed" and "behind: postfix" in checks["worker_lag"]["detail"]
    assert checks["disk"]["detail"].startswith("not measured")  # DATABASE_URL is set
    text = response.get_data(as_text=True)
    assert "pa55-w0rd" not in text and RO_KEY not in text and RW_KEY not in text


def test_without_deep_there_are_no_checks_and_mailcow_is_not_asked(db_url, pool):
    for query in ("", "?deep=0", "?deep=false"):
        body = create_app(make_config(db_url), pool).test_client().get(f"/api/health{query}").get_json()
        assert "checks" not in body and not any(r.startswith("mailcow:") for r in body["reasons"])


def test_anonymous_callers_get_the_plain_verdict_only_with_auth_on(db_url, pool, mailcow):
    config = make_config(db_url, mailcow.url, auth_enabled=True, auth_password=PASSWORD)
    client = create_app(config, pool).test_client()
    anonymous = client.get("/api/health?deep=1")
    assert anonymous.status_code == 200
    assert anonymous.get_json() == {"status": "degraded", "database": "connected"}
    signed_in = client.get("/api/health?deep=1", headers=_basic(PASSWORD)).get_json()
    assert _checks(signed_in)["mailcow"]["status"] == "ok"


def test_a_dead_database_is_unhealthy_and_a_503_with_the_deep_checks(db_url):
    dead = create_pool("postgresql://nobody@127.0.0.1:1/none", 1)
    try:
        response = create_app(make_config(db_url), dead).test_client().get("/api/health?deep=1")
    finally:
        dead.close(timeout=0)
    body = response.get_json()
    assert response.status_code == 503 and body["status"] == "unhealthy"
    checks = _checks(body)
    assert checks["database"] == checks["database"] | {"status": "failed", "detail": "does not answer"}
    assert checks["worker_lag"]["detail"] == "unknown: the database does not answer"
    assert body["reasons"][0] == "the database does not answer"
    assert not any(reason.startswith("database:") for reason in body["reasons"])  # said once


@pytest.mark.parametrize("value", ["yes", "2", "", "TRUE ", "1; DROP", "\x00"])
def test_a_bad_deep_is_a_400_naming_it(db_url, pool, value):
    config = make_config(db_url, auth_enabled=True, auth_password=PASSWORD)
    response = create_app(config, pool).test_client().get("/api/health", query_string={"deep": value})
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) == {"error", "detail", "code"} and body["detail"].startswith("deep: ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.one_of(st.sampled_from(["0", "1", "true", "false"]), st.text(max_size=20)))
def test_any_deep_value_is_a_verdict_or_a_400_envelope(db_url, pool, value):
    response = create_app(make_config(db_url), pool).test_client().get("/api/health", query_string={"deep": value})
    body = response.get_json()
    if value in ("0", "1", "true", "false"):
        assert response.status_code == 200 and ("checks" in body) == (value in ("1", "true"))
    else:
        assert response.status_code == 400 and set(body) == {"error", "detail", "code"}
