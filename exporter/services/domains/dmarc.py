"""DMARC: one `v=DMARC1` record at _dmarc.<domain>, its policy, subdomain policy, pct, alignment and
report addresses."""

from __future__ import annotations

from typing import Any

import dns.resolver

from exporter.services.domains.lookup import DnsFailure, query


def check(resolver: dns.resolver.Resolver, domain: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": "error",
        "message": "",
        "record": None,
        "policy": None,
        "subdomain_policy": None,
        "pct": None,
        "adkim": None,
        "aspf": None,
        "rua": None,
        "ruf": None,
        "is_strong": False,
        "warnings": [],
    }
    try:
        records = [
            t
            for t in query(resolver, f"_dmarc.{domain}", "TXT") or []
            if t.replace(" ", "").lower().startswith("v=dmarc1")
        ]
    except DnsFailure as exc:
        return {**out, "status": "unknown", "message": f"DNS lookup failed: {exc}"}
    if not records:
        return {**out, "message": "No DMARC record found", "warnings": ["Without DMARC, spoofed mail is not rejected"]}
    out["record"] = "; ".join(records)
    if len(records) > 1:
        return {**out, "message": f"Multiple DMARC records found ({len(records)}). Receivers ignore them all"}
    params = {k: v for k, v in ((k, v.strip()) for k, v in _raw_tags(records[0]).items())}
    policy = (params.get("p") or "").lower() or None
    pct = params.get("pct")
    out.update(
        policy=policy,
        subdomain_policy=(params.get("sp") or "").lower() or None,
        pct=pct or "100",
        adkim=(params.get("adkim") or "r").lower(),
        aspf=(params.get("aspf") or "r").lower(),
        rua=params.get("rua"),
        ruf=params.get("ruf"),
        is_strong=policy == "reject",
    )
    warnings = []
    if policy not in ("none", "quarantine", "reject"):
        return {**out, "message": f"DMARC record has no valid policy (p={params.get('p')!r})"}
    if pct and pct != "100":
        warnings.append(f"Policy applies to {pct}% of failing mail only (pct={pct})")
    if not params.get("rua"):
        warnings.append("No aggregate report address (rua=): you will not see who sends as this domain")
    if out["subdomain_policy"] == "none" and policy != "none":
        warnings.append("Subdomains are not protected (sp=none)")
    if policy == "reject":
        return {
            **out,
            "status": "warning" if warnings else "success",
            "message": "DMARC configured with strict policy",
            "warnings": warnings,
        }
    if policy == "quarantine":
        warnings.insert(0, "Consider upgrading to p=reject")
        return {
            **out,
            "status": "warning",
            "message": "DMARC configured with moderate policy (quarantine)",
            "warnings": warnings,
        }
    warnings.insert(0, "p=none only monitors: spoofed mail is delivered")
    return {**out, "status": "warning", "message": "DMARC in monitoring mode only (p=none)", "warnings": warnings}


def _raw_tags(record: str) -> dict[str, str]:
    """Tags with their values as written (DMARC values such as rua keep their commas)."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            out[name.strip().lower()] = value
    return out
