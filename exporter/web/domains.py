"""`/api/domains/all` and the DNS check triggers, with the shapes of seed 002."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from exporter.http import context
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
    names = _active_domains()
    outcome = dns_checks.run(context.config(), context.pool(), context.live().client, names, full=True)
    return jsonify(domains.checked_all(outcome))


@bp.post("/<string:domain>/check-dns")
def check_one(domain: str) -> Response:
    domain = domain.strip().lower().rstrip(".")
    if domain not in _active_domains():
        raise ApiError(404, "Not Found", f"{domain} is not an active mailcow domain", "UNKNOWN_DOMAIN")
    outcome = dns_checks.run(context.config(), context.pool(), context.live().client, [domain], full=False)
    if domain not in outcome["results"]:
        raise ApiError(502, "DNS check failed", "; ".join(outcome["errors"]) or "no result", "DNS_CHECK_FAILED")
    return jsonify(domains.checked_one(domain, outcome["results"][domain]))
