"""SPF, DKIM and DMARC checks against a real DNS server on loopback serving a zone per case."""

from __future__ import annotations

import pytest

from exporter.services.domains import dkim, dmarc, spf
from exporter.services.domains.domain import check_domain
from exporter.services.domains.lookup import make_resolver
from tests.dns_server import running_dns, txt

IPS = ["203.0.113.10", "2001:db8::10"]
KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAyLkeyForTests" + "Q" * 300 + "IDAQAB"
BOTH = "ip4:203.0.113.10 ip6:2001:db8::10"


def dkim_zone(domain: str, record: str) -> dict:
    return {f"dkim._domainkey.{domain}": [txt(record)]}


ZONE: dict[str, list[tuple[str, str]]] = {
    "ok.test": [txt("v=spf1 mx -all"), ("MX", "10 mail.ok.test.")],
    "mail.ok.test": [("A", "203.0.113.10"), ("AAAA", "2001:db8::10")],
    "_dmarc.ok.test": [txt("v=DMARC1; p=reject; rua=mailto:dmarc@ok.test")],
    "toomany.test": [txt("v=spf1 " + " ".join(f"a:h{n}.toomany.test" for n in range(1, 11)) + f" mx {BOTH} -all")],
    "notauth.test": [txt("v=spf1 ip4:198.51.100.0/24 -all")],
    "multi.test": [txt("v=spf1 mx -all"), txt(f"v=spf1 {BOTH} -all")],
    "viainclude.test": [txt("v=spf1 include:_spf.provider.test -all")],
    "_spf.provider.test": [txt("v=spf1 ip4:203.0.113.0/24 ip6:2001:db8::/32 -all")],
    "void.test": [txt(f"v=spf1 a:nx1.void.test a:nx2.void.test a:nx3.void.test {BOTH} -all")],
    "redirect.test": [txt("v=spf1 redirect=_spf.provider.test")],
    "redirectall.test": [txt(f"v=spf1 {BOTH} -all redirect=_spf.nowhere.test")],
    "loop.test": [txt("v=spf1 include:loop2.test -all")],
    "loop2.test": [txt("v=spf1 include:loop.test -all")],
    "qualifier.test": [txt("v=spf1 ~ip4:203.0.113.10 ip6:2001:db8::10 -all")],
    "neutral.test": [txt(f"v=spf1 {BOTH} ?all")],
    "softall.test": [txt(f"v=spf1 {BOTH} ~all")],
    "plusall.test": [txt("v=spf1 +all")],
    "noall.test": [txt(f"v=spf1 {BOTH}")],
    "badmech.test": [txt("v=spf1 foo:bar -all")],
    "mxmany.test": [txt("v=spf1 mx -all"), *[("MX", f"10 mx{n}.mxmany.test.") for n in range(11)]],
    "cidr.test": [txt("v=spf1 a:net.cidr.test/24 a:net.cidr.test//64 -all")],
    "net.cidr.test": [("A", "203.0.113.99"), ("AAAA", "2001:db8::99")],
    "nospf.test": [("MX", "10 mail.ok.test.")],
    **{f"h{n}.toomany.test": [("A", f"192.0.2.{n}")] for n in range(1, 11)},
    **dkim_zone("ok.test", f"v=DKIM1;k=rsa;p={KEY}"),
    **dkim_zone("testing.test", f"v=DKIM1;k=rsa;t=y;p={KEY}"),
    **dkim_zone("strict.test", f"v=DKIM1;k=rsa;t=s;p={KEY}"),
    **dkim_zone("sha1.test", f"v=DKIM1;k=rsa;h=sha1;p={KEY}"),
    **dkim_zone("revoked.test", "v=DKIM1;k=rsa;p="),
    **dkim_zone("issues.test", f"v=DKIM1;k=rsa;t=s;h=sha1;p={KEY}"),
    **dkim_zone("mismatch.test", f"v=DKIM1;k=rsa;p={KEY[:-10]}AAAAAAAAAA"),
    **dkim_zone("spaces.test", f"v=DKIM1; k=rsa;  p={KEY[:200]} {KEY[200:]}"),
    **dkim_zone("unknownk.test", f"v=DKIM1;k=dsa;p={KEY}"),
    "_dmarc.quarantine.test": [txt("v=DMARC1; p=quarantine; rua=mailto:d@quarantine.test")],
    "_dmarc.none.test": [txt("v=DMARC1; p=none; rua=mailto:d@none.test")],
    "_dmarc.twice.test": [txt("v=DMARC1; p=none"), txt("v=DMARC1; p=reject")],
    "_dmarc.pct.test": [txt("v=DMARC1; p=reject; pct=50; sp=none; rua=mailto:d@pct.test")],
}


@pytest.fixture(scope="module")
def resolver():
    with running_dns(ZONE) as port:
        yield make_resolver([f"127.0.0.1:{port}"], timeout=5)


def expected(record: str) -> dict:
    return {"dkim_selector": "dkim", "dkim_txt": record, "pubkey": KEY}


def test_spf_success_through_mx(resolver):
    result = spf.check(resolver, "ok.test", IPS)
    assert result["status"] == "success" and result["has_strict_all"] and result["includes_mx"]
    assert result["dns_lookups"] == 1 and "mx" in result["message"]
    assert {ip: r["result"] for ip, r in result["authorized"].items()} == {
        "203.0.113.10": "pass",
        "2001:db8::10": "pass",
    }


def test_spf_too_many_lookups(resolver):
    result = spf.check(resolver, "toomany.test", IPS)
    assert result["status"] == "error" and result["dns_lookups"] == 11
    assert result["message"] == "SPF has too many DNS lookups (11). Maximum is 10"
    assert "This will cause SPF validation to fail" in result["warnings"]


def test_spf_server_ip_not_authorised(resolver):
    result = spf.check(resolver, "notauth.test", IPS)
    assert result["status"] == "error" and "Server IP 203.0.113.10 is NOT authorized" in result["message"]
    assert result["authorized"]["203.0.113.10"]["result"] == "fail"


def test_spf_multiple_records(resolver):
    result = spf.check(resolver, "multi.test", IPS)
    assert result["message"] == "Multiple SPF records found (2). Only one is allowed"
    assert result["warnings"] == ["Multiple SPF records invalidate ALL records"]


def test_spf_authorised_through_an_include_with_cidr_and_ipv6(resolver):
    result = spf.check(resolver, "viainclude.test", IPS)
    assert result["status"] == "success" and result["includes"] == ["_spf.provider.test"]
    assert result["authorized"]["203.0.113.10"]["via"] == ["include:_spf.provider.test", "ip4:203.0.113.0/24"]
    assert result["authorized"]["2001:db8::10"]["via"] == ["include:_spf.provider.test", "ip6:2001:db8::/32"]
    assert "include:_spf.provider.test (ip4:203.0.113.0/24)" in result["message"]


def test_spf_void_lookups_over_two(resolver):
    result = spf.check(resolver, "void.test", IPS)
    assert result["status"] == "error" and result["void_lookups"] == 3 and "void lookups (3)" in result["message"]


def test_spf_redirect_is_followed_without_all_and_ignored_with_it(resolver):
    followed = spf.check(resolver, "redirect.test", IPS)
    assert followed["status"] == "success"
    assert followed["authorized"]["203.0.113.10"]["via"][0] == "redirect=_spf.provider.test"
    ignored = spf.check(resolver, "redirectall.test", IPS)
    assert ignored["status"] == "success" and ignored["dns_lookups"] == 0
    assert any("ignored" in w for w in ignored["warnings"])


def test_spf_loops_are_detected(resolver):
    result = spf.check(resolver, "loop.test", IPS)
    assert result["status"] == "error" and "loop" in result["message"]


def test_spf_qualifiers_are_honoured(resolver):
    result = spf.check(resolver, "qualifier.test", IPS)
    assert result["authorized"]["203.0.113.10"]["result"] == "softfail"
    assert result["status"] == "error" and "203.0.113.10 is NOT authorized" in result["message"]


@pytest.mark.parametrize(
    ("domain", "status", "fragment"),
    [
        ("softall.test", "success", "soft-fail ~all"),
        ("neutral.test", "warning", "neutral ?all"),
        ("plusall.test", "error", "+all"),
        ("noall.test", "error", "no 'all' mechanism"),
        ("badmech.test", "error", "invalid mechanism 'foo:bar'"),
        ("mxmany.test", "error", "11 MX names"),
        ("nospf.test", "error", "No SPF record found"),
    ],
)
def test_spf_policies_and_errors(resolver, domain, status, fragment):
    result = spf.check(resolver, domain, IPS)
    assert result["status"] == status and fragment in result["message"], result


def test_spf_cidr_on_a_mechanism(resolver):
    result = spf.check(resolver, "cidr.test", IPS)
    assert result["status"] == "success" and result["authorized"]["2001:db8::10"]["via"] == ["a:net.cidr.test//64"]


@pytest.mark.parametrize(
    ("domain", "record", "status", "message", "warnings", "info"),
    [
        ("ok.test", f"v=DKIM1;k=rsa;p={KEY}", "success", "DKIM configured correctly", [], []),
        (
            "testing.test",
            f"v=DKIM1;k=rsa;t=y;p={KEY}",
            "error",
            "DKIM is in TESTING mode (t=y) - Emails will pass validation even with invalid signatures. "
            "Remove t=y for production!",
            [],
            [],
        ),
        (
            "strict.test",
            f"v=DKIM1;k=rsa;t=s;p={KEY}",
            "success",
            "DKIM configured correctly",
            [],
            ["DKIM uses strict subdomain mode (t=s)"],
        ),
        (
            "sha1.test",
            f"v=DKIM1;k=rsa;h=sha1;p={KEY}",
            "warning",
            "DKIM configured but has warnings",
            ["⚠️ DKIM uses SHA1 hash algorithm (h=sha1)"],
            [],
        ),
        (
            "revoked.test",
            "v=DKIM1;k=rsa;p=",
            "error",
            "DKIM key is revoked (p= is empty)",
            ["❌ DKIM key is revoked (p= is empty)"],
            [],
        ),
        (
            "issues.test",
            f"v=DKIM1;k=rsa;t=s;h=sha1;p={KEY}",
            "warning",
            "DKIM configured but has warnings",
            ["⚠️ DKIM uses SHA1 hash algorithm (h=sha1)"],
            ["DKIM uses strict subdomain mode (t=s)"],
        ),
        ("spaces.test", f"v=DKIM1;k=rsa;p={KEY}", "success", "DKIM configured correctly", [], []),
        (
            "unknownk.test",
            f"v=DKIM1;k=dsa;p={KEY}",
            "warning",
            "DKIM configured but has warnings",
            ["⚠️ Unknown DKIM key type k=dsa"],
            [],
        ),
    ],
)
def test_dkim_cases(resolver, domain, record, status, message, warnings, info):
    result = dkim.check(resolver, domain, expected(record))
    assert (result["status"], result["message"], result["warnings"], result["info"]) == (
        status,
        message,
        warnings,
        info,
    )
    assert result["match"] is True and result["dkim_domain"] == f"dkim._domainkey.{domain}"
    assert result["parameters"]["v"] == "DKIM1"


def test_dkim_mismatch_and_missing(resolver):
    mismatch = dkim.check(resolver, "mismatch.test", expected(f"v=DKIM1;k=rsa;p={KEY}"))
    assert mismatch["status"] == "error" and not mismatch["match"] and "differs in: p" in mismatch["message"]
    missing = dkim.check(resolver, "nospf.test", expected(f"v=DKIM1;k=rsa;p={KEY}"))
    assert missing["status"] == "error" and missing["message"] == "No DKIM record found at dkim._domainkey.nospf.test"
    unsigned = dkim.check(resolver, "ok.test", {})
    assert unsigned["status"] == "error" and "no DKIM key" in unsigned["message"]


@pytest.mark.parametrize(
    ("domain", "status", "policy", "message"),
    [
        ("ok.test", "success", "reject", "DMARC configured with strict policy"),
        ("quarantine.test", "warning", "quarantine", "DMARC configured with moderate policy (quarantine)"),
        ("none.test", "warning", "none", "DMARC in monitoring mode only (p=none)"),
        ("nospf.test", "error", None, "No DMARC record found"),
        ("twice.test", "error", None, "Multiple DMARC records found (2). Receivers ignore them all"),
    ],
)
def test_dmarc_cases(resolver, domain, status, policy, message):
    result = dmarc.check(resolver, domain)
    assert (result["status"], result["policy"], result["message"]) == (status, policy, message)


def test_dmarc_pct_and_subdomain_policy_are_warned_about(resolver):
    result = dmarc.check(resolver, "pct.test")
    assert result["status"] == "warning" and result["is_strong"] and result["pct"] == "50"
    assert any("pct=50" in w for w in result["warnings"]) and any("sp=none" in w for w in result["warnings"])


def test_a_whole_domain_in_one_call(resolver):
    result = check_domain(resolver, "OK.test.", IPS, expected(f"v=DKIM1;k=rsa;p={KEY}"))
    assert result["domain"] == "ok.test" and result["checked_at"].endswith("Z")
    assert [result[k]["status"] for k in ("spf", "dkim", "dmarc")] == ["success", "success", "success"]


def test_an_unreachable_resolver_is_unknown_not_error():
    dead = make_resolver(["127.0.0.1:9"], timeout=0.5)
    assert spf.check(dead, "ok.test", IPS)["status"] == "unknown"
    assert dmarc.check(dead, "ok.test")["status"] == "unknown"
