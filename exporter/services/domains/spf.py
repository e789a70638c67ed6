"""SPF (RFC 7208): the record's syntax and policy, the lookup limits of §4.6.4 counted through
include and redirect (10 DNS-querying terms, 10 MX names per mx, 2 void lookups), loops, and which
term authorises each of mailcow's server addresses (ip4/ip6 with CIDR, a, mx, ptr, exists, include,
redirect; qualifiers honoured; redirect ignored when the record has `all`)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import dns.resolver

from exporter.services.domains.lookup import DnsFailure, query, reverse_name

MAX_LOOKUPS = 10
MAX_VOID = 2
MAX_MX = 10
MECHANISMS = frozenset({"all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"})
QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MODIFIER = re.compile(r"^([a-z][a-z0-9_.-]*)=(.*)$", re.I)
_TERM = re.compile(r"^([+\-~?]?)([a-z0-9]+)(?::([^/]+))?(?:/(\d+))?(?://(\d+))?$", re.I)


class PermError(Exception):
    """The record cannot be evaluated (RFC 7208 permerror); the message says why."""


@dataclass
class Term:
    qualifier: str
    mechanism: str
    value: str | None
    cidr4: int | None
    cidr6: int | None
    text: str


@dataclass
class Record:
    terms: list[Term]
    redirect: str | None
    text: str


@dataclass
class Walk:
    """What one evaluation counted and found."""

    lookups: int = 0
    void: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def spf_records(texts: list[str] | None) -> list[str]:
    return [t for t in texts or [] if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]


def parse(text: str) -> Record:
    """Terms and modifiers of one record; PermError names the first invalid part."""
    parts = text.split()
    if not parts or parts[0].lower() != "v=spf1":
        raise PermError(f"the record must start with 'v=spf1 ': {text!r}")
    terms, redirect = [], None
    for part in parts[1:]:
        modifier = _MODIFIER.match(part)
        if modifier and ":" not in modifier.group(1):
            if modifier.group(1).lower() == "redirect":
                if redirect is not None:
                    raise PermError("more than one redirect= modifier")
                redirect = modifier.group(2).lower().rstrip(".")
            continue  # exp= and unknown modifiers are allowed and ignored
        match = _TERM.match(part)
        if not match or match.group(2).lower() not in MECHANISMS:
            raise PermError(f"invalid mechanism {part!r}")
        qualifier, mechanism, value, first, second = match.groups()
        mechanism = mechanism.lower()
        cidr4 = cidr6 = None
        if mechanism in ("ip4", "ip6"):
            if not value:
                raise PermError(f"{part!r} needs an address")
            try:
                network = ipaddress.ip_network(f"{value}/{first}" if first else value, strict=False)
            except ValueError:
                raise PermError(f"invalid address in {part!r}") from None
            if (mechanism == "ip4") != (network.version == 4):
                raise PermError(f"{part!r}: wrong address family")
            value = str(network)
        elif mechanism in ("a", "mx"):
            cidr4 = int(first) if first else None
            cidr6 = int(second) if second else None
            if (cidr4 is not None and cidr4 > 32) or (cidr6 is not None and cidr6 > 128):
                raise PermError(f"invalid prefix length in {part!r}")
        elif mechanism in ("include", "exists") and not value:
            raise PermError(f"{part!r} needs a domain")
        elif first:
            raise PermError(f"{part!r} takes no prefix length")
        terms.append(
            Term(
                QUALIFIERS[qualifier or "+"],
                mechanism,
                value.lower().rstrip(".") if value and mechanism not in ("ip4", "ip6") else value,
                cidr4,
                cidr6,
                part,
            )
        )
    return Record(terms, redirect, text)


class Evaluator:
    """check_host() for several addresses at once, counting lookups the way RFC 7208 does."""

    def __init__(self, resolver: dns.resolver.Resolver, ips: list[str]) -> None:
        self.resolver = resolver
        self.ips = [ipaddress.ip_address(ip) for ip in ips]
        self.walk = Walk()

    def _count(self) -> None:
        self.walk.lookups += 1

    def _query(self, name: str, rtype: str) -> list[str]:
        answer = query(self.resolver, name, rtype)
        if answer is None:
            self.walk.void += 1
            return []
        return answer

    def _addresses(self, name: str, family: int | None = None) -> list[ipaddress._BaseAddress]:
        """A and AAAA of `name` (void counted only when both are empty)."""
        found = []
        for rtype in ("A", "AAAA"):
            if family and (rtype == "A") != (family == 4):
                continue
            found += [ipaddress.ip_address(a) for a in query(self.resolver, name, rtype) or []]
        if not found:
            self.walk.void += 1
        return found

    def _in(self, ip: Any, addresses: list[Any], term: Term) -> bool:
        prefix = term.cidr4 if ip.version == 4 else term.cidr6
        for address in addresses:
            if address.version != ip.version:
                continue
            bits = prefix if prefix is not None else address.max_prefixlen
            if ip in ipaddress.ip_network(f"{address}/{bits}", strict=False):
                return True
        return False

    def evaluate(self, domain: str, chain: tuple[str, ...] = ()) -> dict[Any, tuple[str, list[str]]]:
        """{ip: (result, [terms that decided it])} for the record of `domain`."""
        if domain in chain:
            raise PermError(f"include/redirect loop: {' -> '.join((*chain, domain))}")
        records = spf_records(query(self.resolver, domain, "TXT"))
        if len(records) != 1:
            raise PermError(f"{domain} has {len(records)} SPF records" if records else f"{domain} has no SPF record")
        record = parse(records[0])
        decided: dict[Any, tuple[str, list[str]]] = {}
        pending = lambda: [ip for ip in self.ips if ip not in decided]  # noqa: E731
        has_all = False
        for term in record.terms:
            if term.mechanism == "all":
                has_all = True
                for ip in pending():
                    decided[ip] = (term.qualifier, [term.text])
                break
            matched = self._match(term, domain, pending(), (*chain, domain))
            for ip, via in matched.items():
                decided[ip] = (term.qualifier, via)
        if not has_all and record.redirect and pending():
            self._count()
            inner = self.evaluate(record.redirect, (*chain, domain))
            for ip in pending():
                result, via = inner[ip]
                decided[ip] = (result, [f"redirect={record.redirect}", *via])
        for ip in pending():
            decided[ip] = ("neutral", [])
        return decided

    def _match(self, term: Term, domain: str, ips: list[Any], chain: tuple[str, ...]) -> dict[Any, list[str]]:
        """The pending addresses `term` matches, with how."""
        mechanism, target = term.mechanism, term.value or domain
        if mechanism in ("ip4", "ip6"):
            network = ipaddress.ip_network(term.value)
            return {ip: [term.text] for ip in ips if ip.version == network.version and ip in network}
        self._count()
        if mechanism == "include":
            inner = self.evaluate(target, chain)
            return {ip: [term.text, *inner[ip][1]] for ip in ips if inner[ip][0] == "pass"}
        if mechanism == "a":
            addresses = self._addresses(target)
            return {ip: [term.text] for ip in ips if self._in(ip, addresses, term)}
        if mechanism == "mx":
            names = self._query(target, "MX")
            if len(names) > MAX_MX:
                raise PermError(f"{term.text}: {len(names)} MX names, more than {MAX_MX}")
            out: dict[Any, list[str]] = {}
            for name in names:
                addresses = [
                    ipaddress.ip_address(a) for r in ("A", "AAAA") for a in query(self.resolver, name, r) or []
                ]
                for ip in ips:
                    if ip not in out and self._in(ip, addresses, term):
                        out[ip] = [f"{term.text} ({name})"]
            return out
        if mechanism == "exists":
            if "%" in target:
                self.walk.warnings.append(f"{term.text}: macros are not expanded by this check")
                return {}
            return {ip: [term.text] for ip in ips} if self._query(target, "A") else {}
        # ptr (RFC 7208 §5.5 discourages it): validated names of the address under the target domain
        self.walk.warnings.append(f"{term.text}: the ptr mechanism is slow and discouraged (RFC 7208 §5.5)")
        out = {}
        for ip in ips:
            for name in (self._query(reverse_name(str(ip)), "PTR"))[:MAX_MX]:
                if (name == target or name.endswith("." + target)) and ip in self._addresses(name, ip.version):
                    out[ip] = [f"{term.text} ({name})"]
                    break
        return out


def _policy(record: Record) -> str | None:
    for term in record.terms:
        if term.mechanism == "all":
            return {"pass": "+all", "fail": "-all", "softfail": "~all", "neutral": "?all"}[term.qualifier]
    return None


def check(resolver: dns.resolver.Resolver, domain: str, server_ips: list[str]) -> dict[str, Any]:
    """The SPF check of seed 002: status success | warning | error, message, record, details."""
    out: dict[str, Any] = {
        "status": "error",
        "message": "",
        "record": None,
        "has_strict_all": False,
        "includes_mx": False,
        "includes": [],
        "warnings": [],
        "dns_lookups": 0,
        "void_lookups": 0,
        "policy": None,
        "authorized": {},
    }
    try:
        records = spf_records(query(resolver, domain, "TXT"))
    except DnsFailure as exc:
        return {**out, "status": "unknown", "message": f"DNS lookup failed: {exc}"}
    if not records:
        return {
            **out,
            "message": "No SPF record found",
            "warnings": ["Without SPF, receivers cannot tell who may send"],
        }
    out["record"] = "; ".join(records)
    if len(records) > 1:
        return {
            **out,
            "message": f"Multiple SPF records found ({len(records)}). Only one is allowed",
            "warnings": ["Multiple SPF records invalidate ALL records"],
        }
    try:
        record = parse(records[0])
    except PermError as exc:
        return {**out, "message": f"Invalid SPF record: {exc}"}
    policy = _policy(record)
    out.update(
        policy=policy,
        has_strict_all=policy == "-all",
        includes_mx=any(t.mechanism == "mx" for t in record.terms),
        includes=[t.value for t in record.terms if t.mechanism == "include"],
    )
    evaluator = Evaluator(resolver, server_ips)
    errors: list[str] = []
    try:
        decided = evaluator.evaluate(domain)
    except PermError as exc:
        decided, errors = {}, [str(exc)]
    except DnsFailure as exc:
        return {**out, "status": "unknown", "message": f"DNS lookup failed: {exc}"}
    return _verdict(out, record, policy, evaluator.walk, decided, errors, server_ips)


def _verdict(
    out: dict[str, Any],
    record: Record,
    policy: str | None,
    walk: Walk,
    decided: dict[Any, tuple[str, list[str]]],
    errors: list[str],
    server_ips: list[str],
) -> dict[str, Any]:
    """The evaluated record judged: lookup limits, each server address's result, the policy."""
    out.update(dns_lookups=walk.lookups, void_lookups=walk.void)
    warnings = list(walk.warnings)
    if policy is not None and record.redirect:
        warnings.append(f"redirect={record.redirect} is ignored because the record has {policy}")
    if walk.lookups > MAX_LOOKUPS:
        errors.insert(0, f"SPF has too many DNS lookups ({walk.lookups}). Maximum is {MAX_LOOKUPS}")
        warnings += [
            f"SPF record exceeds the {MAX_LOOKUPS} DNS lookup limit with {walk.lookups} lookups",
            "This will cause SPF validation to fail",
        ]
    if walk.void > MAX_VOID:
        errors.append(f"SPF has too many void lookups ({walk.void}). Maximum is {MAX_VOID}")
    authorized = []
    for ip, (result, via) in decided.items():
        out["authorized"][str(ip)] = {"result": result, "via": via}
        if result == "pass":
            authorized.append(f"{ip} via {' '.join([via[0]] + [f'({v})' for v in via[1:]])}")
        else:
            errors.append(f"Server IP {ip} is NOT authorized in SPF record")
            warnings.append(f"Mail server IP {ip} gets '{result}' from SPF")
    if not server_ips:
        warnings.append("mailcow's server addresses are unknown: authorisation not checked")
    if policy == "+all":
        errors.append("SPF uses +all: anyone may send as this domain")
    elif policy is None and not record.redirect:
        errors.append("SPF has no 'all' mechanism: no policy for other senders")
    elif policy == "?all":
        warnings.append("?all (neutral) gives receivers no policy: use ~all or -all")
    out["warnings"] = warnings
    if errors:
        return {**out, "status": "error", "message": errors[0] if len(errors) == 1 else "; ".join(errors)}
    describe = {"-all": "strict -all policy", "~all": "soft-fail ~all policy", "?all": "neutral ?all policy"}
    message = f"SPF configured correctly with {describe.get(policy or '', 'a redirect policy')}"
    if authorized:
        message += ". Server IP authorized via " if len(authorized) == 1 else ". Server IPs authorized: "
        message += "; ".join(a.split(" via ", 1)[1] if len(authorized) == 1 else a for a in authorized)
    return {**out, "status": "warning" if policy == "?all" or walk.warnings else "success", "message": message}
