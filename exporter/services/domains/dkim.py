"""DKIM: the key published at <selector>._domainkey.<domain> against the one mailcow signs with
(`/get/dkim/{domain}`), tag by tag and whitespace-insensitive, plus the tags that weaken it."""

from __future__ import annotations

import re
from typing import Any

import dns.resolver

from exporter.services.domains.lookup import DnsFailure, query

KEY_TYPES = frozenset({"rsa", "ed25519"})


def tags(record: str) -> dict[str, str]:
    """`v=DKIM1; k=rsa; p=...` as {tag: value}, whitespace removed (keys are split across strings)."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            out[name.strip().lower()] = re.sub(r"\s+", "", value)
    return out


def check(resolver: dns.resolver.Resolver, domain: str, expected: dict[str, Any]) -> dict[str, Any]:
    selector = str(expected.get("dkim_selector") or "dkim")
    wanted = re.sub(r'"\s*"', "", str(expected.get("dkim_txt") or "")).strip('"')  # SPLIT_DKIM_255 chunks
    name = f"{selector}._domainkey.{domain}"
    out: dict[str, Any] = {
        "status": "error",
        "message": "",
        "selector": selector,
        "dkim_domain": name,
        "expected_record": wanted or None,
        "actual_record": None,
        "match": False,
        "warnings": [],
        "info": [],
        "parameters": {},
    }
    if not wanted:
        return {**out, "message": "mailcow has no DKIM key for this domain: mail is sent unsigned"}
    try:
        published = [t for t in query(resolver, name, "TXT") or [] if "p=" in t.replace(" ", "")]
    except DnsFailure as exc:
        return {**out, "status": "unknown", "message": f"DNS lookup failed: {exc}"}
    if not published:
        return {**out, "message": f"No DKIM record found at {name}"}
    actual = published[0]
    params = tags(actual)
    expected_tags = tags(wanted)
    differs = sorted(k for k in set(params) | set(expected_tags) if params.get(k) != expected_tags.get(k))
    out.update(actual_record=actual, parameters=params, match=not differs)
    warnings, info, errors = [], [], []
    if len(published) > 1:
        errors.append(f"{len(published)} DKIM records at {name}: receivers may pick the wrong one")
    if differs:
        errors.append(f"DKIM record does not match mailcow's key (differs in: {', '.join(differs)})")
    if params.get("p", None) == "":
        errors.append("DKIM key is revoked (p= is empty)")
        warnings.append("❌ DKIM key is revoked (p= is empty)")
    flags = params.get("t", "").split(":")
    if "y" in flags:
        errors.append(
            "DKIM is in TESTING mode (t=y) - Emails will pass validation even with invalid signatures. "
            "Remove t=y for production!"
        )
    if "s" in flags:
        info.append("DKIM uses strict subdomain mode (t=s)")
    if "sha1" in params.get("h", "").split(":"):
        warnings.append("⚠️ DKIM uses SHA1 hash algorithm (h=sha1)")
    if params.get("k", "rsa") not in KEY_TYPES:
        warnings.append(f"⚠️ Unknown DKIM key type k={params['k']}")
    out.update(warnings=warnings, info=info)
    if errors:
        return {**out, "status": "error", "message": errors[0] if len(errors) == 1 else "; ".join(errors)}
    if warnings:
        return {**out, "status": "warning", "message": "DKIM configured but has warnings"}
    return {**out, "status": "success", "message": "DKIM configured correctly"}
