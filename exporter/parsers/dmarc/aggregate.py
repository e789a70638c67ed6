"""DMARC aggregate reports (RFC 7489 appendix C, RFC 9990 DMARCbis, and the pre-RFC draft) to
plain dicts. Counts and pass/fail are the reporter's own `policy_evaluated`; auth results are
kept exactly as given (a result without a domain included).

Safety: the XML goes through `safexml` (DTDs and entities refused wherever they are, nothing
expanded), and the record count is bounded before anything is built.
"""

from __future__ import annotations

import contextlib
import re
import socket
from datetime import UTC, datetime
from typing import Any

from exporter.parsers.dmarc import safexml
from exporter.parsers.dmarc.errors import InvalidReport, indexed_name, quoted

MAX_RECORDS = 100_000
MAX_COUNT = 2**31 - 1  # messages in one record: the store's integer column
Node = safexml.Element
DMARC2_NS = "urn:ietf:params:xml:ns:dmarc-2.0"

_RECORD_TAG = re.compile(r"<(?:[\w.-]+:)?record[\s>]")


def _check_record_count(records: int) -> None:
    if records > MAX_RECORDS:
        raise InvalidReport(f"{records:,} records is over the {MAX_RECORDS:,}-record limit")


def _root(data: bytes, errors: list[str]) -> Node:
    """The parsed document; a broken one is recovered and noted in `errors`."""
    _check_record_count(data.count(b"<record") + data.count(b":record") // 2)  # before anything is built
    text = safexml.decode(data)
    if not text:
        raise InvalidReport("the report is empty")
    if b"\x00" in data[:65536]:  # UTF-16: count again on the text
        _check_record_count(sum(1 for _ in _RECORD_TAG.finditer(text)))
    root, complaint = safexml.parse(text)
    if complaint:
        errors.append(f"Invalid XML: {complaint}")
    return root


def _strip_namespaces(root: Node) -> str | None:
    """Drop namespaces from every tag (default or prefixed alike); return the feedback's namespace."""
    namespace = None
    for node in root.iter():
        tag = node.tag
        if tag[0] == "{":
            uri, _, local = tag[1:].partition("}")
            if local == "feedback":
                namespace = uri
            with contextlib.suppress(ValueError):  # a name lxml will not set (recovered garbage) keeps its namespace
                node.tag = local
    return namespace


def _child(node: Node | None, name: str) -> Node | None:
    return node.find(name) if node is not None else None


def _children(node: Node | None, name: str) -> list[Node]:
    return node.findall(name) if node is not None else []


def _get(node: Node | None, *path: str) -> str | None:
    if node is None:
        return None
    value = node.findtext("/".join(path))
    if value is None:
        return None
    return value.strip() or None


def _word(value: str | None, default: str | None = None) -> str | None:
    return value.strip().lower() if value else default


def _epoch(value: str | None, what: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(float(str(value).strip())), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise InvalidReport(f"{what} is not a Unix time: {quoted(repr(value))}") from None


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except (ValueError, OverflowError):
        return None


def _feedback(root: Node) -> Node:
    if root.tag == "feedback":
        return root
    found = root.find(".//feedback")  # e.g. inside a stray <xs:schema> wrapper
    if found is None:
        raise InvalidReport("no <feedback> element: not a DMARC aggregate report")
    return found


def _fields(node: Node | str | None) -> dict[str, Any]:
    """Direct children by tag: text for leaves, the element for the rest (one pass, no path lookups).
    A leaf's text where an element belongs (`<row>text</row>`) has none."""
    out: dict[str, Any] = {}
    if not isinstance(node, Node):
        return out
    for child in node:
        tag = child.tag
        if tag in out:
            continue
        if len(child):
            out[tag] = child
        else:
            text = child.text
            out[tag] = (text.strip() or None) if text else None
    return out


def _lower(value: Any, default: str | None = None) -> str | None:
    return value.lower() if isinstance(value, str) else default


def _auth(node: Node) -> dict[str, Any]:
    f = _fields(node)
    return {
        "domain": _lower(f.get("domain")),
        "selector": f.get("selector") if isinstance(f.get("selector"), str) else None,
        "scope": _lower(f.get("scope")),
        "result": _lower(f.get("result"), "none"),
        "human_result": f.get("human_result") if isinstance(f.get("human_result"), str) else None,
    }


def _ip(text: Any) -> str:
    if isinstance(text, str):
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                return socket.inet_ntop(family, socket.inet_pton(family, text))
            except OSError:
                continue
    raise InvalidReport(f"record with an invalid source_ip {quoted(repr(text))}")


def _record(node: Node) -> dict[str, Any]:
    parts = _fields(node)
    row = _fields(parts.get("row"))
    source_ip = _ip(row.get("source_ip"))
    count = _int(row.get("count") if isinstance(row.get("count"), str) else None)
    if count is None or not 0 <= count <= MAX_COUNT:
        raise InvalidReport(f"record for {source_ip} has no valid count")
    evaluated_node = row.get("policy_evaluated")
    evaluated = _fields(evaluated_node)
    spf = _lower(evaluated.get("spf"), "fail")
    dkim = _lower(evaluated.get("dkim"), "fail")
    identifiers = _fields(parts.get("identifiers") if "identifiers" in parts else parts.get("identities"))
    auth = parts.get("auth_results")
    auth = None if isinstance(auth, str) or auth is None else auth
    return {
        "source_ip": source_ip,
        "count": count,
        "disposition": _lower(evaluated.get("disposition"), "none"),
        "dkim": dkim,
        "spf": spf,
        "dkim_aligned": dkim == "pass",
        "spf_aligned": spf == "pass",
        "dmarc_pass": dkim == "pass" or spf == "pass",
        "reasons": [
            {"type": _word(_get(r, "type")), "comment": _get(r, "comment")} for r in _children(evaluated_node, "reason")
        ]
        if evaluated_node is not None and not isinstance(evaluated_node, str)
        else [],
        "header_from": _lower(identifiers.get("header_from")),
        "envelope_from": _lower(identifiers.get("envelope_from")),
        "envelope_to": _lower(identifiers.get("envelope_to")),
        "auth_dkim": [_auth(d) for d in _children(auth, "dkim")],
        "auth_spf": [_auth(s) for s in _children(auth, "spf")],
    }


def parse(data: bytes) -> dict[str, Any]:
    """One aggregate report; raise InvalidReport with the reason when it is not one."""
    errors: list[str] = []
    root = _root(data, errors)
    namespace = _strip_namespaces(root) if b"xmlns" in data or root.tag[0] == "{" else None
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
    indexed_name(domain, "policy_published/domain")
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
    version = _get(feedback, "version")
    is_dmarc2 = namespace == DMARC2_NS or any(
        _child(x, name) is not None for x, name in ((policy, "np"), (policy, "testing"), (meta, "generator"))
    )
    return {
        "kind": "aggregate",
        "schema": "dmarc-2.0" if is_dmarc2 else ("rfc7489" if version else "draft"),
        "org_name": indexed_name(org_name.strip(), "org_name"),
        "org_email": email,
        "extra_contact_info": _get(meta, "extra_contact_info"),
        "report_id": indexed_name(report_id.strip("<> "), "report_id"),
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


def _get_all(node: Node | None, name: str) -> list[str]:
    return [c.text.strip() for c in _children(node, name) if c.text and c.text.strip()]
