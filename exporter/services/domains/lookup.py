"""DNS lookups for the checks: a configured resolver, answers as plain values, and void answers
(NXDOMAIN, or no record of that type) told apart from failures."""

from __future__ import annotations

from collections.abc import Sequence

import dns.exception
import dns.resolver
import dns.reversename

TIMEOUT = 5.0


class DnsFailure(Exception):
    """The resolver could not answer (timeout, SERVFAIL): the check cannot decide."""


def make_resolver(servers: Sequence[str] = (), timeout: float = TIMEOUT) -> dns.resolver.Resolver:
    """The system's resolver, or `servers` given as "ip" or "ip:port" (one port for all)."""
    if not servers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        hosts = []
        for server in servers:
            host, _, port = server.rpartition(":") if server.count(":") == 1 else (server, "", "")
            hosts.append(host)
            if port:
                resolver.port = int(port)
        resolver.nameservers = hosts
    resolver.timeout = resolver.lifetime = timeout
    return resolver


def query(resolver: dns.resolver.Resolver, name: str, rtype: str) -> list[str] | None:
    """Answers as text (TXT strings joined), or None when the name or type has none (void)."""
    try:
        answer = resolver.resolve(name, rtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.YXDOMAIN) as exc:
        raise DnsFailure(f"{rtype} {name}: {exc.__class__.__name__}") from None
    except dns.name.LabelTooLong:
        return None
    if rtype == "TXT":
        return [b"".join(r.strings).decode("utf-8", errors="replace") for r in answer]
    if rtype == "MX":
        return [r.exchange.to_text(omit_final_dot=True).lower() for r in answer]
    if rtype == "PTR":
        return [r.target.to_text(omit_final_dot=True).lower() for r in answer]
    return [r.to_text() for r in answer]


def reverse_name(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)
