"""DMARC and TLS-RPT: upload, import-dmarc, the /api/dmarc endpoints, GeoIP, and the metrics."""

from __future__ import annotations

import gzip
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exporter.app import create_app
from exporter.services.geoip import GeoIP, flag
from tests.conftest import make_config
from tests.dmarc_reports import TABLES, aggregate_xml, arf_mail, nested_mail, report_mail, tls_json

ROOT = Path(__file__).parent.parent
SHARED = ROOT.parent / "shared" / "data"
CITY = str(SHARED / "geoip" / "GeoLite2-City-Test.mmdb")
ASN = str(SHARED / "geoip" / "GeoLite2-ASN-Test.mmdb")

DAY = int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()) - 86400
# (ip, count, spf, dkim, disposition) for example.org, yesterday, from two reporters
GOOGLE = [("81.2.69.142", 60, "pass", "pass", "none"), ("1.128.0.1", 30, "fail", "pass", "none")]
MICROSOFT = [("81.2.69.142", 5, "pass", "fail", "none"), ("175.16.199.1", 5, "fail", "fail", "reject")]


@pytest.fixture
def dmarc_pool(pool):
    with pool.connection() as conn:
        conn.execute(f"TRUNCATE {TABLES}")
    return pool


@pytest.fixture
def client(db_url, dmarc_pool):
    config = make_config(db_url, geoip_city_db=CITY, geoip_asn_db=ASN, dmarc_upload_max_bytes=200_000)
    return create_app(config, dmarc_pool).test_client()


def upload(client, data: bytes, name: str = "report.xml"):
    return client.post("/api/dmarc/upload", data={"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


@pytest.fixture
def loaded(client):
    for org, records in (("google.com", GOOGLE), ("Microsoft", MICROSOFT)):
        xml = aggregate_xml(org, f"{org}-{DAY}", "example.org", DAY, DAY + 86399, records)
        assert upload(client, gzip.compress(xml), f"{org}.xml.gz").status_code == 201
    return client


def test_upload_is_201_then_200_duplicate_then_400_with_the_reason(client):
    xml = aggregate_xml("google.com", "r-1", "example.org", DAY, DAY + 86399, GOOGLE)
    created = upload(client, xml)
    body = created.get_json()
    assert created.status_code == 201 and body["status"] == "success" and body["records_count"] == 2
    assert "example.org" in body["message"] and "google.com" in body["message"]
    again = upload(client, gzip.compress(xml), "same-report.xml.gz")  # another container, same report
    assert again.status_code == 200 and again.get_json()["status"] == "duplicate"
    bad = upload(client, b"<feedback><report_metadata>", "broken.xml")
    assert bad.status_code == 400 and bad.get_json()["code"] == "INVALID_REPORT" and bad.get_json()["detail"]
    huge = upload(client, b"<" + b"x" * 300_000)
    assert huge.status_code == 413
    assert client.post("/api/dmarc/upload", data={}).get_json()["code"] == "FILE_REQUIRED"


NICE = (SHARED / "dmarc-samples" / "extract_report" / "nice-input.xml").read_bytes()
PADDED_XXE = (
    b"<!--"
    + b" " * 150_000
    + b'--><!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    + NICE.split(b"?>", 1)[1].replace(b"<report_id>", b"<report_id>&x;", 1)
)
TLS_DAY = (datetime.fromtimestamp(DAY, UTC).isoformat(), datetime.fromtimestamp(DAY + 86399, UTC).isoformat())


LONG = secrets.token_hex(4500)  # random: PostgreSQL compresses a repetitive value below its index row limit
# 84 random 4-byte characters: 84 characters but 336 bytes, three of them over a unique key's 2,704
WIDE = "".join(chr(0x10000 + secrets.randbelow(0x30000)) for _ in range(84))


def _tls_policies(count: int) -> bytes:
    report = json.loads(tls_json("g.com", f"t-{count}", "example.org", *TLS_DAY, 1, 0))
    report["policies"] *= count
    return json.dumps(report).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (PADDED_XXE, "DTDs and entities are not allowed"),
        (nested_mail(2000, NICE), "more than 100 MIME parts"),
        (nested_mail(2000, NICE, "message/rfc822"), "more than 100 MIME parts"),
        (gzip.compress(b"<" + b"\0" * 120_000_000), "decompression bomb"),
        (
            aggregate_xml("g.com", "r-big", "example.org", DAY, DAY + 86399, [("192.0.2.1", 2**31, *"pp", "none")]),
            "count",
        ),
        (tls_json("g.com", "t-big", "example.org", *TLS_DAY, 10**30, 0), "is over 1,000,000,000,000"),
        (tls_json("g\u0000com", "t-nul", "example.org", *TLS_DAY, 1, 0), "NUL character"),
        (arf_mail(sample_from=b"a\0@example.org"), "NUL character"),
        (_tls_policies(101), "101 policies is over the 100-policy limit"),
        (aggregate_xml(LONG, "r-1", "example.org", DAY, DAY + 86399, GOOGLE), "org_name has 9,000 bytes"),
        (aggregate_xml("g.com", LONG, "example.org", DAY, DAY + 86399, GOOGLE), "report_id has 9,000 bytes"),
        (aggregate_xml("g.com", "r-1", f"{LONG}.org", DAY, DAY + 86399, GOOGLE), "domain has 9,004 bytes"),
        (arf_mail().replace(b"Reported-Domain: example.org", f"Reported-Domain: {LONG}.org".encode()), "9,004"),
        (aggregate_xml(WIDE, WIDE, WIDE, DAY, DAY + 86399, GOOGLE), "336 bytes, over the 253 allowed"),
    ],
    ids=[
        "xxe-after-padding",
        "mime-2000-deep",
        "rfc822-2000-deep",
        "gzip-bomb",
        "count",
        "tls-count",
        "tls-nul",
        "arf-nul",
        "tls-101-policies",
        "long-reporter",
        "long-report-id",
        "long-domain",
        "long-failure-domain",
        "multibyte-names",
    ],
)
def test_hostile_uploads_are_400_with_the_reason_and_store_nothing(client, dmarc_pool, data, reason):
    response = upload(client, data, "hostile")
    body = response.get_json()
    assert response.status_code == 400 and set(body) == {"error", "detail", "code"}
    assert body["code"] == "INVALID_REPORT" and reason in body["detail"]
    with dmarc_pool.connection() as conn:
        stored = conn.execute("SELECT (SELECT count(*) FROM dmarc_reports) + (SELECT count(*) FROM tls_reports)")
        assert stored.fetchone()[0] == 0


def test_a_failure_report_with_8_bit_headers_is_stored_and_listed(client):
    assert upload(client, arf_mail(), "failure.eml").status_code == 201
    listed = client.get("/api/dmarc/domains/example.org/failure-reports?days=3650").get_json()["data"]
    assert [r["reporter"] for r in listed] == ["DMARC \ufffd\ufffd Reporter <dmarc@example.net>"]


def test_file_and_attachment_names_with_control_characters_are_stored_printable(client, dmarc_pool):
    xml = aggregate_xml("google.com", "named", "example.org", DAY, DAY + 86399, GOOGLE)
    assert upload(client, xml, "report\x00.xml").status_code == 201
    mail = report_mail(tls_json("g.com", "t-named", "example.org", *TLS_DAY, 1, 0), "tls.json", "TLS report")
    mail = mail.replace(b'filename="tls.json.gz"', b"filename*=utf-8''tls%00%ff.json.gz")
    assert upload(client, mail, "tls.eml").status_code == 201
    with dmarc_pool.connection() as conn:
        sources = conn.execute("SELECT source FROM dmarc_reports UNION ALL SELECT source FROM tls_reports").fetchall()
    assert sorted(s for (s,) in sources) == [
        "report\ufffd.xml",
        "tls.eml > part 3 (application/gzip, tls\ufffd\ufffd.json.gz)",
    ]


def test_domains_overview_and_daily_reports_count_what_the_reports_say(loaded):
    total = sum(r[1] for r in GOOGLE + MICROSOFT)  # 100 messages
    dmarc = sum(r[1] for r in GOOGLE + MICROSOFT if "pass" in (r[2], r[3]))  # 95
    spf = sum(r[1] for r in GOOGLE + MICROSOFT if r[2] == "pass")  # 65
    dkim = sum(r[1] for r in GOOGLE + MICROSOFT if r[3] == "pass")  # 90
    body = loaded.get("/api/dmarc/domains").get_json()
    assert body["total_domains"] == 1 and body["total_messages"] == total and body["total_unique_ips"] == 3
    domain = body["domains"][0]
    assert domain["domain"] == "example.org" and domain["dmarc_pass_pct"] == round(100 * dmarc / total, 1)
    assert domain["spf_pass_pct"] == round(100 * spf / total, 1) and domain["policy_p"] == "reject"
    assert domain["last_report_date"] == DAY + 86399
    overview = loaded.get("/api/dmarc/domains/example.org/overview?days=7").get_json()
    assert overview["unique_reporters"] == 2 and overview["policy"]["p"] == "reject"
    assert overview["daily_stats"] == [
        {"date": DAY, "total_messages": total, "dmarc_pass_pct": dmarc, "spf_pass_pct": spf, "dkim_pass_pct": dkim}
    ]
    daily = loaded.get("/api/dmarc/domains/example.org/reports").get_json()["reports"]
    assert daily[0]["report_count"] == 2 and daily[0]["reporters"] == ["Microsoft", "google.com"]
    day = datetime.fromtimestamp(DAY, UTC).strftime("%Y-%m-%d")
    details = loaded.get(f"/api/dmarc/domains/example.org/reports/{day}/details").get_json()["reports"]
    assert sorted(sum(r["count"] for r in d["records"]) for d in details) == [10, 90]
    assert loaded.get("/api/dmarc/domains?days=0").status_code == 400


def test_sources_carry_geoip_and_failures_only_keeps_real_failures(loaded):
    sources = loaded.get("/api/dmarc/domains/example.org/sources").get_json()["sources"]
    by_ip = {s["source_ip"]: s for s in sources}
    assert [s["source_ip"] for s in sources] == ["81.2.69.142", "1.128.0.1", "175.16.199.1"]
    london = by_ip["81.2.69.142"]
    assert (london["country_code"], london["city"], london["country_emoji"]) == ("GB", "London", "\U0001f1ec\U0001f1e7")
    assert london["total_messages"] == 65 and london["reporters"] == 2
    assert by_ip["1.128.0.1"]["asn"] == "AS1221" and by_ip["1.128.0.1"]["asn_org"] == "Telstra Pty Ltd"
    assert by_ip["175.16.199.1"]["country_code"] == "CN" and london["first_seen"] == DAY
    failures = loaded.get("/api/dmarc/domains/example.org/sources?failures_only=true").get_json()["sources"]
    assert [(s["source_ip"], s["total_messages"]) for s in failures] == [("175.16.199.1", 5)]


def test_without_geoip_databases_the_fields_are_null_and_the_flag_a_globe(db_url, dmarc_pool):
    client = create_app(make_config(db_url), dmarc_pool).test_client()
    upload(client, aggregate_xml("google.com", "r-geo", "example.org", DAY, DAY + 86399, GOOGLE))
    source = client.get("/api/dmarc/domains/example.org/sources").get_json()["sources"][0]
    assert source["country_code"] is None and source["asn"] is None and source["country_emoji"] == flag(None)


def test_geoip_reloads_when_the_database_file_changes(tmp_path):
    path = tmp_path / "city.mmdb"
    geo = GeoIP(str(path), None)
    assert geo.lookup("81.2.69.142")["city"] is None and not geo.available["city"]
    shutil.copy(CITY, path)
    assert geo.reload_if_changed() is True
    assert geo.lookup("81.2.69.142")["city"] == "London"
    assert geo.reload_if_changed() is False
    shutil.copy(SHARED / "geoip" / "GeoLite2-Country-Test.mmdb", path)
    os.utime(path, (time.time() + 5, time.time() + 5))
    assert geo.reload_if_changed() is True and geo.lookup("81.2.69.142")["country_code"] == "GB"


def test_tls_reports_list_daily_and_details(client):
    start = datetime.fromtimestamp(DAY, UTC)
    for org, ok, failed in (("Google Inc.", 1200, 1), ("Microsoft", 300, 1)):
        body = tls_json(
            org, f"{org}-1", "example.org", start.isoformat(), (start + timedelta(days=1)).isoformat(), ok, failed
        )
        assert upload(client, body, "tls.json").status_code == 201
    listing = client.get("/api/dmarc/domains/example.org/tls-reports").get_json()
    assert listing["total"] == 2 and {r["total_success"] for r in listing["data"]} == {1200, 300}
    daily = client.get("/api/dmarc/domains/example.org/tls-reports/daily").get_json()
    assert daily["totals"]["total_successful_sessions"] == 1500 and daily["totals"]["total_failed_sessions"] == 2
    assert daily["data"][0]["organizations"] == ["Google Inc.", "Microsoft"]
    day = start.strftime("%Y-%m-%d")
    details = client.get(f"/api/dmarc/domains/example.org/tls-reports/{day}/details").get_json()
    assert details["stats"]["total_sessions"] == 1502 and details["stats"]["success_rate"] == round(150000 / 1502, 2)
    policy = details["providers"][0]["policies"][0]
    assert policy["policy_type"] == "sts" and policy["mx_host"] == "mx.example.org"
    assert policy["failure_details"][0]["result_type"] == "certificate-expired"


def test_a_tls_report_of_10000_failure_details_keeps_exact_counts_and_its_details_stay_small(db_url, dmarc_pool):
    client = create_app(make_config(db_url, dmarc_upload_max_bytes=5_000_000), dmarc_pool).test_client()
    kinds = ["certificate-expired", "starttls-not-supported", "validation-failure"]
    sent = [{"result-type": kinds[i % 3], "failed-session-count": i % 997 + 1} for i in range(10_001)]
    report = json.loads(tls_json("Evil", "t-10k", "example.org", *TLS_DAY, 5, 0))
    report["policies"][0]["failure-details"] = sent  # one too many: reading them all is what costs
    refused = upload(client, gzip.compress(json.dumps(report).encode()), "tls.json.gz")
    assert refused.status_code == 400 and "10,001 failure details is over the 10,000" in refused.get_json()["detail"]
    sent.pop()
    report["policies"][0]["summary"]["total-failure-session-count"] = sum(f["failed-session-count"] for f in sent)
    data = gzip.compress(json.dumps(report, separators=(",", ":")).encode())
    assert upload(client, data, "tls.json.gz").status_code == 201
    window = f"from={(DAY - 86400) * 1000}&to={(DAY + 86400) * 1000}&domain=example.org"
    types = client.get(f"/grafana/infinity/tls_failure_types?{window}").get_json()
    assert {t["result_type"]: t["sessions"] for t in types} == {
        kind: sum(f["failed-session-count"] for f in sent if f["result-type"] == kind) for kind in kinds
    }
    daily = client.get("/api/dmarc/domains/example.org/tls-reports/daily").get_json()
    assert daily["totals"]["total_failed_sessions"] == report["policies"][0]["summary"]["total-failure-session-count"]
    day = datetime.fromtimestamp(DAY, UTC).strftime("%Y-%m-%d")
    answer = client.get(f"/api/dmarc/domains/example.org/tls-reports/{day}/details")
    assert len(answer.get_data()) < 20_000  # was the whole 10,000 details
    policy = answer.get_json()["providers"][0]["policies"][0]
    assert policy["failure_details_total"] == 1003  # the 1,000 largest and one merged entry per result type
    shown = policy["failure_details"]
    assert len(shown) == 20 and sum(d.get("merged_entries", 0) for d in shown[:3]) == 9_000  # largest first
    assert shown[3]["failed_session_count"] == 997 and "merged_entries" not in shown[3]


def test_tls_session_sums_over_many_reports_never_overflow(client):
    for n, count in enumerate((2**63 - 1, 2**63 - 1, 10**12, 10**12)):
        response = upload(client, tls_json(f"o{n}", "t", "example.org", *TLS_DAY, count, 0), "t.json")
        assert response.status_code == (201 if count == 10**12 else 400)
    daily = client.get("/api/dmarc/domains/example.org/tls-reports/daily")  # was a 500: bigint out of range
    assert daily.status_code == 200 and daily.get_json()["totals"]["total_successful_sessions"] == 2 * 10**12


def test_tls_lists_are_paged_and_bounded_with_exact_totals(client):
    for n in range(102):
        assert upload(client, tls_json(f"org-{n:03}", "t", "example.org", *TLS_DAY, 10, 1), "t.json").status_code == 201
    listing = client.get("/api/dmarc/domains/example.org/tls-reports?page=3&page_size=50").get_json()
    assert listing["total"] == 102 and len(listing["data"]) == 2
    daily = client.get("/api/dmarc/domains/example.org/tls-reports/daily").get_json()["data"][0]
    assert (daily["report_count"], daily["organization_count"], daily["total_success"]) == (102, 102, 1020)
    assert daily["organizations"] == [f"org-{n:03}" for n in range(100)]
    day = datetime.fromtimestamp(DAY, UTC).strftime("%Y-%m-%d")
    details = client.get(f"/api/dmarc/domains/example.org/tls-reports/{day}/details?limit=10").get_json()
    assert len(details["providers"]) == 10
    assert (details["stats"]["total_reports"], details["stats"]["total_providers"]) == (102, 102)
    assert details["stats"]["total_sessions"] == 1122
    window = f"from={(DAY - 86400) * 1000}&to={(DAY + 86400) * 1000}&limit=5"
    rows = client.get(f"/grafana/infinity/tls_reports?{window}").get_json()
    assert [(r["organization_name"], r["policy_domains"], r["successful_sessions"]) for r in rows][:2] == [
        ("org-101", "example.org", 10),
        ("org-100", "example.org", 10),
    ] and len(rows) == 5


def test_metrics_count_reported_messages_tls_sessions_and_invalid_reports(loaded):
    before = loaded.get("/metrics").get_data(as_text=True)
    invalid_before = _value(before, 'mailcow_dmarc_invalid_reports_total{channel="upload"}')
    upload(loaded, b"not a report at all", "junk.txt")
    text = loaded.get("/metrics").get_data(as_text=True)
    assert _value(text, 'mailcow_dmarc_invalid_reports_total{channel="upload"}') == invalid_before + 1
    assert _value(text, 'mailcow_dmarc_last_report_timestamp_seconds{domain="example.org"}') == DAY + 86399
    assert _value(text, 'mailcow_dmarc_messages_total{domain="example.org",result="reject"}') >= 5


def _value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def test_import_dmarc_command_imports_a_folder_once(db_url, dmarc_pool, tmp_path):
    env = {**os.environ, "DATABASE_URL": db_url, "GEOIP_CITY_DB": CITY}
    command = [sys.executable, "-m", "exporter.cli", "import-dmarc", "--quiet", str(SHARED / "dmarc-samples")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "36 files: 30 reports stored, 4 already there, 2 not readable" in first.stdout
    assert "empty.xml: the file is empty" in first.stderr
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    assert "0 reports stored, 34 already there" in second.stdout
    with dmarc_pool.connection() as conn:
        assert conn.execute("SELECT count(*) FROM dmarc_reports").fetchone()[0] == 21
        assert conn.execute("SELECT count(*) FROM tls_reports").fetchone()[0] == 4
        assert conn.execute("SELECT count(*) FROM dmarc_failure_reports").fetchone()[0] == 5


def test_import_dmarc_command_reports_hostile_files_and_imports_the_rest(db_url, dmarc_pool, tmp_path):
    (tmp_path / "good.xml").write_bytes(aggregate_xml("google.com", "cli", "example.org", DAY, DAY + 86399, GOOGLE))
    (tmp_path / "nested.eml").write_bytes(nested_mail(2000, NICE))
    (tmp_path / "xxe.xml").write_bytes(PADDED_XXE)
    env = {**os.environ, "DATABASE_URL": db_url}
    command = [sys.executable, "-m", "exporter.cli", "import-dmarc", "--quiet", str(tmp_path)]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "3 files: 1 reports stored, 0 already there, 2 not readable" in run.stdout
    assert "nested.eml: nested.eml: the e-mail has more than 100 MIME parts" in run.stderr
    assert "xxe.xml: xxe.xml: DTDs and entities are not allowed" in run.stderr


def test_grafana_rows_give_one_pass_rate_series_per_domain(loaded):
    other = [("81.2.69.142", 10, "fail", "fail", "quarantine"), ("81.2.69.142", 30, "pass", "fail", "none")]
    assert (
        upload(loaded, aggregate_xml("google.com", "r-other", "example.net", DAY, DAY + 86399, other)).status_code
        == 201
    )
    window = f"from={(DAY - 86400) * 1000}&to={(DAY + 86400) * 1000}"
    rows = loaded.get(f"/grafana/infinity/dmarc_pass_by_domain?{window}").get_json()
    assert rows == [{"time": DAY * 1000, "example.net": 75.0, "example.org": 95.0}]
    only = loaded.get(f"/grafana/infinity/dmarc_sources?{window}&domain=example.net&failures_only=true").get_json()
    assert [(r["source_ip"], r["total_messages"], r["country"]) for r in only] == [("81.2.69.142", 10, "🇬🇧 GB")]


def test_a_foreign_page_cannot_upload_or_trigger_an_import(client):
    xml = aggregate_xml("google.com", "r-csrf", "example.org", DAY, DAY + 86399, GOOGLE)
    foreign = {"Origin": "https://evil.example"}
    response = client.post(
        "/api/dmarc/upload",
        data={"file": (io.BytesIO(xml), "r.xml")},
        content_type="multipart/form-data",
        headers=foreign,
    )
    assert response.status_code == 403 and response.get_json()["code"] == "ORIGIN_REFUSED"
    assert client.post("/api/dmarc/imap/sync", headers=foreign).status_code == 403
    assert client.get("/api/dmarc/domains").get_json()["total_domains"] == 0
