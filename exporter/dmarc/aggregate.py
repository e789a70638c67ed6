"""DMARC aggregate reports (RFC 7489 appendix C, RFC 9990 DMARCbis, and the pre-RFC draft) to
plain dicts. Counts and pass/fail are the reporter's own `policy_evaluated`; auth results are
kept exactly as given (a result without a domain included).

Safety: DTDs and entity declarations are refused outright (reports never have them), the parser
neither resolves entities nor touches the network, and the record count is bounded.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

from lxml import etree

from exporter.dmarc.errors import InvalidReport

MAX_RECORDS = 100_000
DMARC2_NS = "urn:ietf:params:xml:ns:dmarc-2.0"

_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.I)
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.S)
_PARSER = dict(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True)


def _text(data: bytes) -> str:
    """The document as text: UTF-16 (BOM or not) or UTF-8 (invalid bytes dropped, BOM removed)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16")
    elif data[:2] == b"<\x00":
        text = data.decode("utf-16-le")
    elif data[:2] == b"\x00<":
        text = data.decode("utf-16-be")
    else:
        text = data.decode("utf-8", errors="ignore")
    return _DECLARATION.sub("", text.lstrip("\ufeff \t\r\n"), count=1).lstrip()


def _root(data: bytes, errors: list[str]) -> etree._Element:
    if _DTD.search(data[:65536]) or _DTD.search(data.replace(b"\x00", b"")[:65536]):
        raise InvalidReport("DTDs and entity declarations are not allowed in a report")
    text = _text(data)
    if not text:
        raise InvalidReport("the report is empty")
    try:
        return etree.fromstring(text, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError as exc:
        strict_error = str(exc)
    root = etree.fromstring(text, etree.XMLParser(recover=True, **_PARSER))
    if root is None:
        raise InvalidReport(f"not well-formed XML: {strict_error}")
    errors.append(f"Invalid XML: {strict_error}")
    return root


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _child(node: etree._Element | None, name: str) -> etree._Element | None:
    if node is None:
        return None
    for child in node:
        if _local(child.tag) == name:
            return child
    return None


def _children(node: etree._Element | None, name: str) -> list[etree._Element]:
    return [c for c in node if _local(c.tag) == name] if node is not None else []


def _get(node: etree._Element | None, *path: str) -> str | None:
    for name in path:
        node = _child(node, name)
    if node is None:
        return None
    value = "".join(node.itertext()).strip()
    return value or None


def _word(value: str | None, default: str | None = None) -> str | None:
    return value.strip().lower() if value else default


def _epoch(value: str | None, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(float(str(value).strip())), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidReport(f"{what} is not a Unix time: {value!r}") from None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


def _feedback(root: etree._Element) -> etree._Element:
    if _local(root.tag) == "feedback":
        return root
    for node in root.iter():
        if _local(node.tag) == "feedback":
            return node  # e.g. inside a stray <xs:schema> wrapper
    raise InvalidReport("no <feedback> element: not a DMARC aggregate report")


def _auth(node: etree._Element) -> dict[str, Any]:
    return {
        "domain": _word(_get(node, "domain")),
        "selector": _get(node, "selector"),
        "scope": _word(_get(node, "scope")),
        "result": _word(_get(node, "result"), "none"),
        "human_result": _get(node, "human_result"),
    }


def _record(node: etree._Element) -> dict[str, Any]:
    row = _child(node, "row")
    ip_text = _get(row, "source_ip")
    try:
        source_ip = str(ipaddress.ip_address(ip_text or ""))
    except ValueError:
        raise InvalidReport(f"record with an invalid source_ip {ip_text!r}") from None
    count = _int(_get(row, "count"))
    if count is None or count < 0:
        raise InvalidReport(f"record for {source_ip} has no valid count")
    evaluated = _child(row, "policy_evaluated")
    spf = _word(_get(evaluated, "spf"), "fail")
    dkim = _word(_get(evaluated, "dkim"), "fail")
    identifiers = _child(node, "identifiers")
    if identifiers is None:
        identifiers = _child(node, "identities")
    auth = _child(node, "auth_results")
    return {
        "source_ip": source_ip,
        "count": count,
        "disposition": _word(_get(evaluated, "disposition"), "none"),
        "dkim": dkim,
        "spf": spf,
        "dkim_aligned": dkim == "pass",
        "spf_aligned": spf == "pass",
        "dmarc_pass": dkim == "pass" or spf == "pass",
        "reasons": [
            {"type": _word(_get(r, "type")), "comment": _get(r, "comment")} for r in _children(evaluated, "reason")
        ],
        "header_from": _word(_get(identifiers, "header_from")),
        "envelope_from": _word(_get(identifiers, "envelope_from")),
        "envelope_to": _word(_get(identifiers, "envelope_to")),
        "auth_dkim": [_auth(d) for d in _children(auth, "dkim")],
        "auth_spf": [_auth(s) for s in _children(auth, "spf")],
    }


def parse(data: bytes) -> dict[str, Any]:
    """One aggregate report; raise InvalidReport with the reason when it is not one."""
    errors: list[str] = []
    root = _root(data, errors)
    feedback = _feedback(root)
    meta = _child(feedback, "report_metadata")
    policy = _child(feedback, "policy_published")
    if meta is None or policy is None:
        raise InvalidReport("missing report_metadata or policy_published: not a DMARC aggregate report")
    email = _get(meta, "email")
    org_name = _get(meta, "org_name") or (email.rsplit("@", 1)[-1].strip("<> ") if email else None)
    if not org_name:
        raise InvalidReport("the report names no reporter (org_name and email are empty)")
    report_id = _get(meta, "report_id")
    if not report_id:
        raise InvalidReport("the report has no report_id")
    domain = _word(_get(policy, "domain"))
    if not domain:
        raise InvalidReport("policy_published names no domain")
    begin = _epoch(_get(meta, "date_range", "begin"), "date_range/begin")
    end = _epoch(_get(meta, "date_range", "end"), "date_range/end")
    record_nodes = _children(feedback, "record")
    if len(record_nodes) > MAX_RECORDS:
        raise InvalidReport(f"{len(record_nodes):,} records is over the {MAX_RECORDS:,}-record limit")
    records = []
    for number, node in enumerate(record_nodes, start=1):
        try:
            records.append(_record(node))
        except InvalidReport as exc:
            errors.append(f"record {number} skipped: {exc}")
    if not records:
        raise InvalidReport("the report has no readable record" + (f" ({errors[-1]})" if errors else ""))
    namespace = etree.QName(feedback.tag).namespace
    version = _get(feedback, "version")
    is_dmarc2 = namespace == DMARC2_NS or any(
        _child(x, name) is not None for x, name in ((policy, "np"), (policy, "testing"), (meta, "generator"))
    )
    return {
        "kind": "aggregate",
        "schema": "dmarc-2.0" if is_dmarc2 else ("rfc7489" if version else "draft"),
        "org_name": org_name.strip(),
        "org_email": email,
        "extra_contact_info": _get(meta, "extra_contact_info"),
        "report_id": report_id.strip("<> "),
        "generator": _get(meta, "generator"),
        "begin": begin,
        "end": end,
        "errors": errors + [e for e in _get_all(meta, "error")],
        "policy": {
            "domain": domain,
            "adkim": _word(_get(policy, "adkim"), "r"),
            "aspf": _word(_get(policy, "aspf"), "r"),
            "p": _word(_get(policy, "p")),
            "sp": _word(_get(policy, "sp")),
            "pct": _int(_get(policy, "pct")),
            "fo": _get(policy, "fo"),
            "np": _word(_get(policy, "np")),
            "testing": _word(_get(policy, "testing")),
            "discovery_method": _word(_get(policy, "discovery_method")),
        },
        "records": records,
    }


def _get_all(node: etree._Element | None, name: str) -> list[str]:
    return ["".join(c.itertext()).strip() for c in _children(node, name) if "".join(c.itertext()).strip()]
