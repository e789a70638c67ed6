"""DMARC aggregate, failure and TLS-RPT parsing on the real samples, odd encodings, and hostile files."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import tracemalloc
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.parsers.dmarc.errors import InvalidReport
from exporter.parsers.dmarc.reports import parse_file
from tests.dmarc_reports import arf_mail, nested_mail

SAMPLES = Path(__file__).parent.parent.parent / "shared" / "data" / "dmarc-samples"

# file -> (reporter, domain, records, messages, spf pass, dkim pass, dmarc pass) as the reports state
# them in policy_evaluated (counted by hand from the XML)
AGGREGATE = {
    "aggregate/!example.com!1538204542!1538463818.xml": ("accurateplastics.com", "example.com", 1, 1, 0, 0, 0),
    "aggregate/!large-example.com!1711897200!1711983600.xml": (
        "accurateplastics.com",
        "example.com",
        2286,
        2286,
        0,
        0,
        0,
    ),
    "aggregate/Report domain- borschow.com Submitter- google.com Report-ID- 949348866075514174.eml": (
        "google.com",
        "borschow.com",
        1,
        1,
        0,
        0,
        0,
    ),
    "aggregate/addisonfoods.com!example.com!1536105600!1536191999.xml": (
        "addisonfoods.com",
        "example.com",
        1,
        1,
        0,
        0,
        0,
    ),
    "aggregate/empty_reason.xml": ("example.org", "example.com", 1, 2, 0, 2, 2),
    "aggregate/estadocuenta1.infonacot.gob.mx!example.com!1536853302!1536939702!2940.xml.zip": (
        "XYZ Corporation",
        "example.com",
        1,
        1,
        0,
        0,
        0,
    ),
    "aggregate/example.net!example.com!1529366400!1529452799.xml": ("example.net", "example.com", 1, 1, 0, 0, 0),
    "aggregate/fastmail.com!example.com!1516060800!1516147199!102675056.xml.gz": (
        "FastMail Pty Ltd",
        "indemed.com",
        1,
        1,
        0,
        0,
        0,
    ),
    "aggregate/ikea.com!example.de!1538690400!1538776800.xml": ("ikea.com", "example.de", 1, 1, 0, 0, 0),
    "aggregate/invalid_utf_8.xml": ("accurateplastics.com", "example.com", 1, 1, 0, 0, 0),
    "aggregate/invalid_xml.xml": ("veeam.com", "example.com", 1, 1, 0, 0, 0),
    "aggregate/mimecast-weird-gzip.eml": ("Mimecast", "ab.id.au", 1, 1, 1, 1, 1),
    "aggregate/old_draft_from_wiki.xml": ("acme.com", "example.com", 1, 2, 2, 0, 2),
    "aggregate/protection.outlook.com!example.com!1711756800!1711843200.xml": (
        "Outlook.com",
        "example.com",
        1,
        1,
        0,
        0,
        0,
    ),
    "aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml": (
        "example.net",
        "example.com",
        2,
        7,
        5,
        5,
        5,
    ),
    "aggregate/rfc9990-sample.xml": ("Sample Reporter", "example.com", 1, 123, 0, 123, 123),
    "aggregate/twilight.eml": ("google.com", "twlnet.com", 1, 1, 1, 1, 1),
    "aggregate/usssa.com!example.com!1538784000!1538870399.xml": ("usssa.com", "example.com", 2, 2, 0, 0, 0),
    "aggregate/veeam.com!example.com!1530133200!1530219600.xml": ("veeam.com", "example.com", 1, 1, 0, 0, 0),
    "aggregate_invalid/report_with_upper_cased_pass.xml": ("example.com", "example.com", 1, 1, 1, 1, 1),
    "extract_report/nice-input.xml": ("google.com", "example.com", 20, 3047, 2637, 3046, 3047),
    "extract_report/nice-input.xml.gz": ("google.com", "example.com", 20, 3047, 2637, 3046, 3047),
    "extract_report/nice-input.xml.zip": ("google.com", "example.com", 20, 3047, 2637, 3046, 3047),
    "extract_report/changed-input.xml": ("fred.com", "example.com", 20, 3047, 2637, 3046, 3047),
    "historical/zoho.com!example.com!1581753600!1581840000.xml": ("zoho.com", "example.com", 8, 9, 0, 0, 0),
}
# file -> (organisation, policy domain, successful sessions, failed sessions, failure detail rows)
TLS = {
    "smtp_tls/google.com_smtp_tls_report.eml": ("Google Inc.", "cardinalhealth.ca", 48, 0, 0),
    "smtp_tls/mail.ru.json": ("Mail.ru", "example.com", 0, 1, 2),
    "smtp_tls/rfc8460.json": ("Company-X", "company-y.example", 5326, 303, 3),
    "smtp_tls/smtp_tls.json": ("Example Inc.", "example.com", 0, 3, 2),
}
# file -> (format, reported domain, source ip, subject of the sample)
FAILURE = {
    "failure/DMARC Failure Report for domain.de (mail-from=sharepoint@domain.de, ip=10.10.10.10).eml": (
        "arf",
        "domain.de",
        "10.10.10.10",
        "Subject",
    ),
    "failure/[Netease DMARC Failure Report] Rent Reminder.eml": (
        "arf",
        "cardinal.com",
        "167.89.69.24",
        "Rent Reminder",
    ),
    "failure/dmarc_ruf_report_linkedin.eml": (
        "arf",
        "example.com",
        "10.10.10.10",
        "Subject line, could be UTF8 encoded",
    ),
    "failure/dmarc_ruf_report_linkedin.crlf.eml": (
        "arf",
        "example.com",
        "10.10.10.10",
        "Subject line, could be UTF8 encoded",
    ),
    "failure/exim_plain_text_only_no_arf_part.eml": (
        "plain-text",
        "example.com",
        "203.0.113.68",
        "Payment from your account.",
    ),
}


def one(path: str) -> dict:
    parsed = parse_file((SAMPLES / path).read_bytes(), Path(path).name)
    assert len(parsed.reports) == 1
    return parsed.reports[0]


def totals(report: dict) -> tuple[int, int, int, int, int]:
    records = report["records"]
    return (
        len(records),
        sum(r["count"] for r in records),
        sum(r["count"] for r in records if r["spf"] == "pass"),
        sum(r["count"] for r in records if r["dkim"] == "pass"),
        sum(r["count"] for r in records if r["dmarc_pass"]),
    )


def test_every_shared_sample_is_covered():
    files = {str(p.relative_to(SAMPLES)) for p in SAMPLES.rglob("*") if p.is_file() and p.name != "SOURCE.md"}
    assert files == set(AGGREGATE) | set(TLS) | set(FAILURE) | {"empty.xml"}


@pytest.mark.parametrize("path", sorted(AGGREGATE))
def test_aggregate_samples_give_the_counts_the_reports_state(path):
    report = one(path)
    reporter, domain, *counts = AGGREGATE[path]
    assert report["kind"] == "aggregate" and report["org_name"] == reporter
    assert report["policy"]["domain"] == domain
    assert totals(report) == tuple(counts)
    assert report["begin"] <= report["end"] and report["report_id"]


@pytest.mark.parametrize("path", [p for p in sorted(AGGREGATE) if p.endswith(".xml") and "invalid" not in p])
def test_record_and_message_counts_match_an_independent_count_of_the_xml(path):
    text = (SAMPLES / path).read_text(errors="ignore")
    counts = [int(c) for c in re.findall(r"<count>\s*(\d+)\s*</count>", text)]
    assert totals(one(path))[:2] == (text.count("<record>"), sum(counts))


def test_auth_results_are_kept_as_given():
    zoho = one("historical/zoho.com!example.com!1581753600!1581840000.xml")
    without_domain = [s for r in zoho["records"] for s in r["auth_spf"] if s["domain"] is None]
    assert len(without_domain) == 2 and all(s["scope"] == "helo" and s["result"] == "none" for s in without_domain)
    passing = [s for r in zoho["records"] for s in r["auth_spf"] + r["auth_dkim"] if s["result"] == "pass"]
    assert passing and totals(zoho)[4] == 0  # the reporter's evaluation wins over its auth results
    ikea = one("aggregate/ikea.com!example.de!1538690400!1538776800.xml")
    assert ikea["records"][0]["auth_dkim"][0]["selector"] is None
    reason = one("aggregate/empty_reason.xml")["records"][0]
    assert reason["envelope_to"] and reason["reasons"] == [{"type": None, "comment": None}]
    upper = one("aggregate_invalid/report_with_upper_cased_pass.xml")["records"][0]
    assert upper["spf"] == upper["dkim"] == "pass"


def test_dmarcbis_reports_keep_their_new_fields():
    report = one("aggregate/rfc9990-example.net!example.com!1700000000!1700086399.xml")
    assert report["schema"] == "dmarc-2.0"
    assert report["policy"]["testing"] == "y" and report["policy"]["np"] and report["policy"]["discovery_method"]
    sample = one("aggregate/rfc9990-sample.xml")
    assert sample["generator"] == "Example DMARC Aggregate Reporter v1.2" and sample["schema"] == "dmarc-2.0"
    assert one("aggregate/old_draft_from_wiki.xml")["schema"] == "draft"


def test_broken_xml_is_recovered_with_a_note():
    report = one("aggregate/invalid_xml.xml")
    assert report["errors"] and report["errors"][0].startswith("Invalid XML")
    assert report["records"][0]["source_ip"] == "199.230.200.36"


@pytest.mark.parametrize("path", sorted(TLS))
def test_tls_samples(path):
    report = one(path)
    org, domain, ok, failed, details = TLS[path]
    assert report["kind"] == "tls" and report["organization_name"] == org
    assert report["policies"][0]["policy_domain"] == domain
    assert sum(p["successful_sessions"] for p in report["policies"]) == ok
    assert sum(p["failed_sessions"] for p in report["policies"]) == failed
    assert sum(len(p["failure_details"]) for p in report["policies"]) == details


@pytest.mark.parametrize("path", sorted(FAILURE))
def test_failure_samples(path):
    report = one(path)
    assert report["kind"] == "failure"
    assert (report["format"], report["reported_domain"], report["source_ip"], report["sample"]["subject"]) == FAILURE[
        path
    ]
    assert report["arrival_date"] is not None


def test_empty_file_gives_a_clear_error():
    with pytest.raises(InvalidReport, match="empty"):
        parse_file((SAMPLES / "empty.xml").read_bytes(), "empty.xml")


# --- encodings and containers the format detection must handle ----------------------------------------

NICE = (SAMPLES / "extract_report/nice-input.xml").read_bytes()


def _xml_body() -> str:
    return re.sub(r"^<\?xml[^>]*\?>\s*", "", NICE.decode())


@pytest.mark.parametrize(
    "variant",
    [
        b"\xef\xbb\xbf" + NICE,  # UTF-8 BOM
        b"\n\n   \t" + NICE,  # leading whitespace
        ('<?xml version="1.0" encoding="UTF-16"?>' + _xml_body()).encode("utf-16"),  # UTF-16 with BOM
        _xml_body().encode("utf-16-le"),  # UTF-16 without BOM
        re.sub(r"<(/?)(\w)", r"<\1dmarc:\2", _xml_body())
        .replace("<dmarc:feedback", '<dmarc:feedback xmlns:dmarc="http://dmarc.org/dmarc-xml/0.1"', 1)
        .encode(),  # prefixed namespace
        gzip.compress(NICE),
    ],
    ids=["bom", "whitespace", "utf16-bom", "utf16le", "prefixed-ns", "gzip"],
)
def test_encodings_and_namespaces(variant):
    report = parse_file(variant).reports[0]
    assert totals(report) == (20, 3047, 2637, 3046, 3047)


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "variant",
    [
        ('<?xml version="1.0" encoding="UTF-16"?>' + _xml_body()).encode("utf-16") + b"\x00",  # odd length
        _xml_body().replace("<org_name>", "<org_name>\ud800", 1).encode("utf-16-le", "surrogatepass"),
    ],
    ids=["truncated", "lone-surrogate"],
)
def test_broken_utf16_loses_only_the_broken_bytes(variant):
    assert totals(parse_file(variant).reports[0]) == (20, 3047, 2637, 3046, 3047)


def test_every_report_in_a_zip_is_found_not_just_the_first_member():
    changed = (SAMPLES / "extract_report/changed-input.xml").read_bytes()
    data = _zip([("README.txt", b"hello"), ("a.xml", NICE), ("b.xml.gz", gzip.compress(changed))])
    parsed = parse_file(data, "bundle.zip")
    assert [r["org_name"] for r in parsed.reports] == ["google.com", "fred.com"]


def test_a_bad_member_does_not_hide_the_good_ones():
    parsed = parse_file(_zip([("bad.xml", b"<feedback><oops"), ("good.xml", NICE)]), "mixed.zip")
    assert len(parsed.reports) == 1 and parsed.problems and "bad.xml" in parsed.problems[0]


# --- hostile input -----------------------------------------------------------------------------------


def _bounded(data: bytes, match: str) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidReport, match=match):
            parse_file(data, "hostile")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.perf_counter() - started < 3 and peak < 150 * 1024 * 1024


# parses one file in a fresh interpreter and prints how far parsing raised its peak RSS (KiB), the
# seconds it took and the outcome: lxml's memory is C memory, which tracemalloc does not see
_RSS_PROBE = """
import json, resource, sys, time
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.parsers.dmarc.reports import parse_file
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
try:
    outcome = "parsed: " + repr([r.get("report_id") for r in parse_file(data, "hostile").reports])
except InvalidReport as exc:
    outcome = str(exc)
seconds = time.perf_counter() - started
print(json.dumps([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, seconds, outcome]))
"""


def _refused_with_bounded_memory(data: bytes, match: str, tmp_path: Path) -> None:
    """Refused with `match` in the reason, within 3 s, and the parse's peak RSS growth under ten
    times the input plus 16 MiB."""
    path = tmp_path / "hostile"
    path.write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).parent.parent,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    grown_kib, seconds, outcome = json.loads(run.stdout)
    assert re.search(match, outcome), outcome
    assert grown_kib * 1024 < 10 * len(data) + 16 * 1024 * 1024, f"grew {grown_kib:,} KiB for {len(data):,} bytes"
    assert seconds < 3


PADDING = "<!--" + " " * (1024 * 1024) + "-->"  # a megabyte before the DTD: past any look at the file's head
LAUGHS = '<!ENTITY l0 "lol">' + "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
BIG = f'<!ENTITY big "{"x" * 100_000}">'


def _report_using(entity: str) -> str:
    """The real sample report, with the entity in its report id and contact info."""
    body = _xml_body().replace("<report_id>", f"<report_id>{entity}", 1)
    return body.replace(
        "</report_metadata>", f"<extra_contact_info>{entity * 1000}</extra_contact_info></report_metadata>"
    )


@pytest.mark.parametrize(
    "document",
    [
        PADDING + '<!DOCTYPE feedback [<!ENTITY e "201">]>' + _report_using("&e;"),
        PADDING + f"<!DOCTYPE feedback [{BIG}]>" + _report_using("&big;"),  # ~100x amplification
        f"<!DOCTYPE feedback [{LAUGHS}]>" + _report_using("&l9;"),
        PADDING + f"<!DOCTYPE feedback [{LAUGHS}]>" + _report_using("&l9;"),
        PADDING + '<!DOCTYPE feedback [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + _report_using("&x;"),
        PADDING + '<!DOCTYPE feedback SYSTEM "http://127.0.0.1:9/report.dtd">' + _xml_body(),
        _report_using("&undeclared;"),
    ],
    ids=[
        "dtd-after-1mb",
        "amplification",
        "billion-laughs",
        "billion-laughs-after-1mb",
        "xxe",
        "external-dtd",
        "undeclared",
    ],
)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_dtds_and_entities_are_refused_wherever_they_are_with_bounded_memory(document, encoding, tmp_path):
    _refused_with_bounded_memory(document.encode(encoding), "DTDs and entities are not allowed", tmp_path)


def test_a_document_of_millions_of_empty_tags_is_refused_before_it_is_built(tmp_path):
    data = b"<feedback>" + b"<x/>" * 4_100_000 + b"</feedback>"  # 16 MB; a parsed tree would be ~500 MB
    _refused_with_bounded_memory(data, "over the 4,000,000-tag limit", tmp_path)


def test_zip_bomb_is_refused_before_it_expands():
    bomb = _zip([("report.xml", b"<" + b"a" * (300 * 1024 * 1024))])
    _bounded(bomb, "decompression bomb")


def test_gzip_bomb_is_refused_with_bounded_memory():
    compressor = __import__("zlib").compressobj(9, wbits=31)
    chunk = b"\0" * (1024 * 1024)
    bomb = b"".join(compressor.compress(chunk) for _ in range(400)) + compressor.flush()
    _bounded(bomb, "decompression bomb")


def test_truncated_gzip_is_refused():
    _bounded(gzip.compress(NICE)[:-40], "truncated")


def test_a_claimed_2_gb_member_is_refused_without_reading_it():
    data = bytearray(_zip([("report.xml", NICE)]))
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 2 * 1024**3 - 1)  # uncompressed size in the directory
    _bounded(bytes(data), "claims 2,147,483,647 bytes")


def test_a_zip_of_many_members_shares_one_decompression_budget():
    member = b"\0" + os.urandom(16_000) + b"\0" * 2_400_000  # ~130x: each member alone passes
    bomb = _zip([(f"report-{n}.xml", member) for n in range(50)])  # 120 MB in all, from 1 MB
    _bounded(bomb, r"decompression bomb")


@pytest.mark.parametrize("container", ["multipart", "message/rfc822"])
def test_mails_nested_a_few_deep_parse_and_2000_deep_are_refused(container):
    shallow = parse_file(nested_mail(5, NICE, container), "nested.eml")
    assert totals(shallow.reports[0]) == (20, 3047, 2637, 3046, 3047)
    _bounded(nested_mail(2000, NICE, container), "more than 100 MIME parts")


def test_a_mail_of_thousands_of_parts_is_refused():
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(5000))
    mail = f'From: a@example.net\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n{parts}--b--\r\n'.encode()
    _bounded(mail, "more than 100 MIME parts")


def test_too_many_records_are_refused():
    record = re.search(r"<record>.*?</record>", NICE.decode(), re.S).group(0)
    head, tail = NICE.decode().split("<record>", 1)[0], "</feedback>"
    _bounded((head + record * 100_001 + tail).encode(), "record limit")


def _tls(**changes) -> bytes:
    """The RFC 8460 sample with keys of the report, of its first policy item or of that item's
    policy replaced."""
    report = json.loads((SAMPLES / "smtp_tls/rfc8460.json").read_bytes())
    item = report["policies"][0]
    for key, value in changes.items():
        key = key.replace("_", "-")
        (report if key in report else item["policy"] if key in item["policy"] else item)[key] = value
    return json.dumps(report).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"policies": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON: depth limit exceeded"),
        (_tls(policies=[1, "x", None]), "names no policy domain"),
        (_tls(summary={"total-successful-session-count": 10**30}), "is over 1,000,000,000,000"),
        (_tls(organization_name="Mail\u0000Corp"), "NUL character"),
        (
            _tls(date_range={"start-datetime": "9999-12-31T23:59:59-23:59", "end-datetime": "2016-04-01T23:59:59Z"}),
            "RFC 3339",
        ),
        (_tls(policies=json.loads(_tls())["policies"] * 101), "101 policies is over the 100-policy limit"),
        (_tls(policy_string=["mx: mx.example"] * 101), "101 policy-string entries in one policy is over the 100"),
        (_tls(mx_host=["mx.example"] * 101), "101 mx-host entries in one policy is over the 100 allowed"),
        (_tls(report_id="r" * 254), "report-id has 254 bytes, over the 253 allowed: 'rrrrrrrr"),
        (_tls(report_id="\U00010000" * 64), "report-id has 256 bytes, over the 253 allowed"),
        (_tls(organization_name="x" * 1_000_001), "1,000,"),
        (_tls(mx_host=["m" * 254]), "mx-host has 254 characters, over the 253 allowed"),
    ],
    ids=[
        "nested-100k",
        "policy-not-an-object",
        "count-beyond-bigint",
        "nul",
        "past-year-9999",
        "101-policies",
        "101-policy-strings",
        "101-mx-hosts",
        "long-report-id",
        "multibyte-report-id",
        "over-1-mb",
        "long-mx-host",
    ],
)
def test_hostile_tls_reports_are_refused_with_the_reason(data, reason):
    with pytest.raises(InvalidReport, match=re.escape(reason)):
        parse_file(data, "tls.json")


def test_values_quoted_in_errors_are_cut_short():
    with pytest.raises(InvalidReport) as refused:
        parse_file(_tls(summary={"total-successful-session-count": 10**308}), "tls.json")
    message = str(refused.value)  # 1e308 as a 309-digit number: its first 39 characters are quoted
    assert message.startswith("tls.json: total-successful-session-count 100,000,000,000,000,00")
    assert message.endswith("… is over 1,000,000,000,000") and len(message) < 120
    with pytest.raises(InvalidReport) as refused:
        parse_file(_tls(date_range={"start-datetime": "9" * 5000}), "tls.json")
    assert len(str(refused.value)) < 120 and str(refused.value).endswith("9999…")


def test_failure_details_past_1000_are_folded_per_result_type_keeping_the_session_counts():
    kinds = ["certificate-expired", "starttls-not-supported", "validation-failure"]
    sent = [
        {"result-type": kinds[i % 3], "sending-mta-ip": "192.0.2.1", "failed-session-count": i} for i in range(5000)
    ]
    sent.append({"result-type": "dnssec-invalid", "failed-session-count": 1})  # only among the smallest
    policy = parse_file(_tls(failure_details=sent), "tls.json").reports[0]["policies"][0]
    details = policy["failure_details"]
    assert len(details) == 1004  # the 1,000 largest, then one merged entry per result type
    assert [d["failed_session_count"] for d in details[:3]] == [4999, 4998, 4997]
    assert {d["result_type"] for d in details[1000:]} == {*kinds, "dnssec-invalid"}
    assert sum(d.get("merged_entries", 1) for d in details) == len(sent)
    for kind in (*kinds, "dnssec-invalid"):
        assert sum(d["failed_session_count"] for d in details if d["result_type"] == kind) == sum(
            f["failed-session-count"] for f in sent if f["result-type"] == kind
        )


def test_random_result_types_fold_into_at_most_21_entries():
    sent = [{"result-type": f"type-{i}", "failed-session-count": 1} for i in range(3000)]
    details = parse_file(_tls(failure_details=sent), "tls.json").reports[0]["policies"][0]["failure_details"]
    assert len(details) == 1021 and details[1000]["result_type"] == "other"
    assert sum(d["failed_session_count"] for d in details) == 3000


def test_tls_fields_of_the_wrong_type_are_ignored_not_a_crash():
    data = _tls(summary=[1, 2], failure_details={"x": 1}, policy_string=["deep", "v: STSv1"])
    report = parse_file(data.replace(b'"deep"', b"[" * 1000 + b"]" * 1000)).reports[0]  # str() of it overflows
    policy = report["policies"][0]
    assert (policy["successful_sessions"], policy["failure_details"]) == (0, [])
    assert policy["policy_strings"] == ["v: STSv1"]


@pytest.mark.parametrize("count", [str(2**31), "1e400"])
def test_a_record_count_the_store_cannot_hold_is_refused(count):
    xml = re.sub(r"<count>\d+</count>", f"<count>{count}</count>", NICE.decode(), count=1).encode()
    report = parse_file(xml).reports[0]
    assert len(report["records"]) == 19 and "record 1 skipped" in report["errors"][0]
    alone = _xml_body().split("<record>")[0] + f"<record><row><source_ip>192.0.2.1</source_ip><count>{count}</count>"
    with pytest.raises(InvalidReport, match="no valid count"):
        parse_file((alone + "</row></record></feedback>").encode())
    assert parse_file(_xml_body().replace("<pct>100</pct>", "<pct>1e400</pct>").encode()).reports[0]


def test_failure_reports_with_8_bit_headers_give_text():
    report = parse_file(arf_mail()).reports[0]
    reporter, subject = report["reporter"], report["sample"]["subject"]
    assert type(reporter) is str and reporter == "DMARC \ufffd\ufffd Reporter <dmarc@example.net>"
    assert type(subject) is str and subject == "Rechnung \ufffd"
    assert report["arrival_date"] == datetime(2024, 6, 1, 8, tzinfo=UTC)
    past_9999 = parse_file(arf_mail(arrival=b"Fri, 31 Dec 9999 23:59:59 -2359")).reports[0]
    assert past_9999["arrival_date"] is None
    with pytest.raises(InvalidReport, match="NUL character"):
        parse_file(arf_mail(sample_from=b"a\0@example.org"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(data):
    with contextlib.suppress(InvalidReport):
        parse_file(data)


def _damaged_zip(offset: int, value: bytes | None = None, directory_shift: int = 0) -> bytes:
    """The sample zipped, with `value` written at `offset` (inside the deflate stream) or the end
    record's central-directory offset moved by `directory_shift`."""
    data = bytearray(_zip([("report.xml", NICE)]))
    if value is not None:
        data[offset : offset + len(value)] = value
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, end + 16, struct.unpack_from("<I", data, end + 16)[0] + directory_shift)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_damaged_zip(60, b"\0" * 10), "cannot be extracted (Error -3 while decompressing"),
        (_damaged_zip(0, directory_shift=100), "cannot be extracted (negative seek value"),
        (b'<?xml version="1.0"?><?xml version="1.0" encoding="UTF-8"?>' + _xml_body().encode(), "not well-formed XML"),
    ],
    ids=["corrupt-deflate", "bad-directory-offset", "second-declaration"],
)
def test_damaged_files_are_refused_with_the_reason(data, reason):
    with pytest.raises(InvalidReport, match=re.escape(reason)):
        parse_file(data)


@pytest.mark.parametrize(
    "document",
    [
        _xml_body().replace("<row>", "<row>lost</row><x>", 1),  # the first record's row is a leaf
        _xml_body()
        .replace("<feedback>", '<feedback xmlns="urn:x">')
        .replace("<org_name>", "<org_nameContent-Type:>", 1),  # recovered as a name lxml will not set
    ],
    ids=["leaf-row", "unsettable-name"],
)
def test_recovered_garbage_keeps_the_readable_records(document):
    report = parse_file(document.encode()).reports[0]
    assert report["errors"][0].startswith("Invalid XML") and len(report["records"]) >= 19


_SMALL_SAMPLES = [p for p in sorted(SAMPLES.rglob("*.*")) if 0 < p.stat().st_size < 20_000 and p.suffix != ".md"]
_TOKENS = [b"<", b"&", b"\0", b"\xff", b"<!DOCTYPE x>", b"--", b"\r\n\r\n", b"[", b"{", b'"', b"1e400", b"-1"]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(_SMALL_SAMPLES),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2), st.sampled_from(_TOKENS)), min_size=1, max_size=6),
)
def test_damaged_real_samples_never_crash_the_parser(path, edits):
    """Real reports with bytes replaced, removed or inserted are read or refused, never a crash."""
    data = bytearray(path.read_bytes())
    for where, how, token in edits:
        at = int(where * len(data))
        if how == 0:
            data[at : at + 1] = token[:1]
        elif how == 1:
            del data[at : at + 40]
        else:
            data[at:at] = token
    with contextlib.suppress(InvalidReport):
        parse_file(bytes(data))
