"""DMARC aggregate, failure and TLS-RPT parsing on the real samples, odd encodings, and hostile files."""

from __future__ import annotations

import contextlib
import gzip
import io
import re
import struct
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.dmarc.errors import InvalidReport
from exporter.dmarc.reports import parse_file

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


def test_billion_laughs_is_refused():
    entities = "".join(f'<!ENTITY l{i} "&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};&l{i - 1};">' for i in range(1, 10))
    bomb = f'<?xml version="1.0"?><!DOCTYPE feedback [<!ENTITY l0 "lol">{entities}]><feedback>&l9;</feedback>'
    _bounded(bomb.encode(), "DTDs and entity declarations are not allowed")


def test_external_entities_are_refused():
    xxe = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><feedback>&x;</feedback>'
    _bounded(xxe.encode(), "not allowed")
    _bounded(xxe.encode("utf-16"), "not allowed")


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


def test_too_many_records_are_refused():
    record = re.search(r"<record>.*?</record>", NICE.decode(), re.S).group(0)
    head, tail = NICE.decode().split("<record>", 1)[0], "</feedback>"
    _bounded((head + record * 100_001 + tail).encode(), "record limit")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_parser(data):
    with contextlib.suppress(InvalidReport):
        parse_file(data)
