"""`/api/domains/all` and the DNS check triggers, with the shapes of seed 002."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from exporter.http import context
from exporter.http.audit_trail import audited
from exporter.http.errors import ApiError
from exporter.readmodels import domains
from exporter.services.domains import checks as dns_checks
from exporter.store import domains as domain_store

bp = Blueprint("domains", __name__, url_prefix="/api/domains")


@bp.get("/all")
def all_domains() -> Response:
    """mailcow's domains now (cached a few seconds) with their last DNS check results."""
    accounts, _ = context.live().accounts()
    checks = domain_store.checks(context.pool())
    last = domain_store.last_full_check(context.pool())
    return jsonify(domains.all_domains(accounts["domains"], checks, last))


def _active_domains() -> list[str]:
    accounts, _ = context.live().accounts()
    return domains.active_names(accounts["domains"])


@bp.post("/check-all-dns")
def check_all() -> Response:
    """Check every active domain now (in parallel) and record a full check."""
    with audited("dns_check", "all active domains") as done:
        names = _active_domains()
        outcome = dns_checks.run(context.config(), context.pool(), context.live().client, names, full=True)
        done.failed = bool(outcome["errors"])
        done.detail = f"{len(outcome['results'])} of {len(names)} checked; " + "; ".join(outcome["errors"])[:400]
    return jsonify(domains.checked_all(outcome))


@bp.post("/<string:domain>/check-dns")
def check_one(domain: str) -> Response:
    domain = domain.strip().lower().rstrip(".")
    with audited("dns_check", f"domain {domain}"[:200]):
        if domain not in _active_domains():
            raise ApiError(404, "Not Found", f"{domain} is not an active mailcow domain", "UNKNOWN_DOMAIN")
        outcome = dns_checks.run(context.config(), context.pool(), context.live().client, [domain], full=False)
        if domain not in outcome["results"]:
            errors = "; ".join(outcome["errors"]) or "no result"
            raise ApiError(502, "DNS check failed", errors, "DNS_CHECK_FAILED")
    return jsonify(domains.checked_one(domain, outcome["results"][domain]))
