"""The general audit log: DMARC uploads, DNS checks, IMAP syncs and sign-in lockouts are recorded in the
request that makes them (who, from which client address, what, outcome) next to queue and quarantine
actions, and GET /api/audit-log filters them by kind, actor and time, newest first."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.app import create_app
from exporter.store.database import connect, migration_files
from tests.conftest import make_config
from tests.dmarc_reports import aggregate_xml
from tests.dns_server import SIMULATED_ZONE, running_dns

PASSWORD = "s3cret-pass"
PROXY, CLIENT = "10.1.2.3", "198.51.100.23"
DAY = int(datetime.now(UTC).timestamp()) // 86400 * 86400 - 86400


def _basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = _basic("admin") | {"X-Forwarded-For": CLIENT}


@pytest.fixture
def audit_pool(pool):
    with pool.connection() as conn:
        conn.execute(
            "TRUNCATE action_audit, domain_dns_checks, app_state, auth_failures, auth_lockouts, request_counts"
        )
    return pool


@pytest.fixture
def client(db_url, audit_pool, mailcow):
    """Auth on, behind a trusted proxy, against the simulated mailcow and a loopback DNS server."""
    with running_dns(SIMULATED_ZONE) as port:
        config = make_config(
            db_url,
            mailcow.url,
            auth_enabled=True,
            auth_password=PASSWORD,
            auth_max_failures=2,
            trusted_proxies=["10.0.0.0/8"],
            dns_resolvers=[f"127.0.0.1:{port}"],
            live_cache_seconds=0,
            dmarc_imap_host="127.0.0.1",
            dmarc_imap_port=9,  # nothing listens: the sync runs and fails
            dmarc_imap_use_ssl=False,
            dmarc_imap_user="dmarc@example.org",
            dmarc_imap_password="imap-secret-pw",
        )
        test_client = create_app(config, audit_pool).test_client()
        test_client.environ_base["REMOTE_ADDR"] = PROXY
        yield test_client


def _log(client, query: str = "") -> dict:
    response = client.get(f"/api/audit-log{query}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _upload(client, data: bytes, name: str):
    return client.post(
        "/api/dmarc/upload",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
        headers=ADMIN,
    )


def test_each_state_change_is_audited_with_actor_address_and_outcome(client):
    xml = aggregate_xml(
        "google.com", "r-1", "example.org", DAY, DAY + 86399, [("192.0.2.1", 3, "pass", "pass", "none")]
    )
    assert _upload(client, xml, "google.xml").status_code == 201
    assert _upload(client, b"<not a report", "junk\x00.xml").status_code == 400
    assert client.post("/api/domains/check-all-dns", headers=ADMIN).status_code == 200
    assert client.post("/api/domains/nope.example/check-dns", headers=ADMIN).status_code == 404
    assert client.post("/api/dmarc/imap/sync", headers=ADMIN).get_json()["status"] == "error"
    refused = client.post("/api/queue/action", json={"action": "nonsense", "items": ["X"]}, headers=ADMIN)
    assert refused.status_code == 400
    stranger = {"X-Forwarded-For": "203.0.113.9"}
    assert client.get("/api/audit-log", headers=_basic("admin", "wrong") | stranger).status_code == 401
    assert client.get("/api/audit-log", headers=_basic("admin", "wrong") | stranger).status_code == 429

    rows = _log(client)["data"]
    assert [r["kind"] for r in rows] == [
        "sign_in_lockout",
        "queue_action",
        "imap_sync",
        "dns_check",
        "dns_check",
        "dmarc_upload",
        "dmarc_upload",
    ]
    lockout, action, sync, one_dns, all_dns, bad_upload, good_upload = rows
    assert lockout["actor"] == "system" and lockout["remote_addr"] == "203.0.113.9" and lockout["outcome"] == "ok"
    assert "203.0.113.9 blocked" in lockout["what"]
    assert action["actor"] == "admin" and action["outcome"] == "refused" and action["remote_addr"] == CLIENT
    assert sync["outcome"] == "failed" and sync["detail"].startswith("error: ") and sync["what"] == "folder INBOX"
    assert one_dns["what"] == "domain nope.example" and one_dns["outcome"] == "failed"
    assert one_dns["detail"].startswith("UNKNOWN_DOMAIN")
    assert all_dns["what"] == "all active domains" and all_dns["outcome"] == "ok"
    assert bad_upload["outcome"] == "failed" and bad_upload["detail"].startswith("INVALID_REPORT")
    assert bad_upload["what"] == "file junk\ufffd.xml"  # a NUL in a name is stored printable
    assert good_upload == good_upload | {"what": "file google.xml", "outcome": "ok", "detail": "created"}
    for row in rows[1:]:
        assert row["actor"] == "admin" and row["remote_addr"] == CLIENT and row["at"].endswith("Z")
    dumped = str(rows)
    assert PASSWORD not in dumped and "imap-secret-pw" not in dumped


def test_filters_by_kind_actor_and_time_newest_first_with_pages(client):
    for _ in range(3):
        client.post("/api/domains/nope.example/check-dns", headers=ADMIN)
    client.post("/api/dmarc/imap/sync", headers=ADMIN)
    assert client.post("/api/dmarc/upload", headers=_basic("auditor")).status_code == 401  # not signed in: no entry

    dns = _log(client, "?kind=dns_check&limit=2")
    assert dns["total"] == 3 and dns["pages"] == 2 and len(dns["data"]) == 2
    ids = [r["id"] for r in dns["data"]] + [r["id"] for r in _log(client, "?kind=dns_check&limit=2&page=2")["data"]]
    assert ids == sorted(ids, reverse=True)
    assert _log(client, "?kind=dns_check,imap_sync")["total"] == 4
    assert _log(client, "?kind=imap_sync&actor=admin")["total"] == 1
    assert _log(client, "?kind=imap_sync&actor=auditor")["total"] == 0
    assert _log(client, "?actor=admin")["total"] == 4
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert _log(client, f"?start_date={future.replace('+00:00', 'Z')}")["total"] == 0
    assert _log(client, f"?end_date={past.replace('+00:00', 'Z')}")["total"] == 0
    assert _log(client, f"?start_date={int(datetime.now(UTC).timestamp() * 1000) - 60_000}")["total"] == 4


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("kind=reboot", "kind"),
        ("kind=dns_check,,reboot", "kind"),
        ("kind=", "kind"),
        ("end_date=yesterday", "end_date"),
        ("start_date=2030-01-02&end_date=2030-01-01", "start_date"),
        ("limit=501", "limit"),
        ("page=0", "page"),
        ("page=100000&limit=500", "page"),
        ("actor=" + "a" * 201, "actor"),
    ],
)
def test_bad_parameters_are_a_400_envelope_naming_them(client, query, name):
    response = client.get(f"/api/audit-log?{query}", headers=ADMIN)
    body = response.get_json()
    assert response.status_code == 400 and set(body) == {"error", "detail", "code"}
    assert body["detail"].startswith(f"{name}: ")


def test_the_audit_log_needs_sign_in(client):
    assert client.get("/api/audit-log").status_code == 401


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    params=st.dictionaries(
        st.sampled_from(["kind", "actor", "start_date", "end_date", "page", "limit"]),
        st.one_of(
            st.text(max_size=30),
            st.sampled_from(["dns_check", "imap_sync,dmarc_upload", "admin", "1", "500", "1e309", "\x00", "0"]),
            st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(datetime.isoformat),
            st.integers(min_value=-(10**20), max_value=10**20).map(str),
        ),
        max_size=4,
    )
)
def test_any_parameters_answer_200_or_the_400_envelope(client, params):
    response = client.get("/api/audit-log", query_string=params, headers=ADMIN)
    assert response.status_code in (200, 400), (params, response.status_code)
    if response.status_code == 400:
        assert set(response.get_json()) == {"error", "detail", "code"}
    else:
        assert response.get_json()["total"] >= 0


def test_the_migration_gives_stored_actions_their_kind(databases):
    """Rows written before the audit log grew kinds keep their place: queue and quarantine actions."""
    url = databases.create()
    with connect(url) as conn:
        for version, _, sql in migration_files():
            if version == 25:
                for target in ("queue", "quarantine"):
                    conn.execute(
                        """INSERT INTO action_audit (actor, via, target, action, items, outcome)
                           VALUES ('admin', 'api', %s, 'delete', '[]', 'success')""",
                        (target,),
                    )
            conn.execute(sql)
        kinds = conn.execute("SELECT target, kind, what FROM action_audit ORDER BY id").fetchall()
    assert kinds == [("queue", "queue_action", None), ("quarantine", "quarantine_action", None)]
