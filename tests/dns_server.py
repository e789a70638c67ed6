"""A small authoritative DNS server on loopback (UDP and TCP) serving zones the test defines: the
DNS checks run against real DNS packets, not a mocked resolver."""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from exporter.simulator.app import SERVER_IPV4, SERVER_IPV6
from exporter.simulator.state import DKIM_PUBKEY

Records = dict[str, list[tuple[str, str]]]  # name -> [(type, rdata text)]


def txt(text: str) -> tuple[str, str]:
    """A TXT record as DNS carries it: strings of at most 255 characters."""
    chunks = [text[i : i + 250] for i in range(0, len(text), 250)] or [""]
    return ("TXT", " ".join(f'"{c}"' for c in chunks))


def _answer(records: Records, wire: bytes) -> dns.message.Message:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    if name not in records:
        response.set_rcode(dns.rcode.NXDOMAIN)
        return response
    wanted = dns.rdatatype.to_text(question.rdtype)
    for rtype, text in records[name]:
        if rtype == wanted:
            rdata = dns.rdata.from_text(dns.rdataclass.IN, question.rdtype, text)
            rrset = response.find_rrset(response.answer, question.name, dns.rdataclass.IN, question.rdtype, create=True)
            rrset.add(rdata, ttl=60)
    return response  # a known name without that type: NOERROR, no answer


@contextmanager
def running_dns(records: Records) -> Iterator[int]:
    """Serve `records` on 127.0.0.1 (same port for UDP and TCP); yield the port."""
    zone = {k.lower().rstrip("."): v for k, v in records.items()}

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            message = _answer(zone, data)
            try:
                wire = message.to_wire(max_size=512)
            except dns.exception.TooBig:  # as real servers do: truncated, the client retries over TCP
                message.answer = []
                message.flags |= dns.flags.TC
                wire = message.to_wire()
            sock.sendto(wire, self.client_address)

    class Tcp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            length = struct.unpack("!H", self.request.recv(2))[0]
            data = b""
            while len(data) < length:
                data += self.request.recv(length - len(data))
            wire = _answer(zone, data).to_wire()
            self.request.sendall(struct.pack("!H", len(wire)) + wire)

    for _ in range(50):  # a free UDP port's TCP twin can be taken (the suite runs many servers)
        udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
        port = udp.server_address[1]
        try:
            tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp)
            break
        except OSError:
            udp.server_close()
    else:
        raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (udp, tcp)]
    for thread in threads:
        thread.start()
    try:
        yield port
    finally:
        for server in (udp, tcp):
            server.shutdown()
            server.server_close()


# The simulated mailcow's domains: example.org all good; example.net with SPF missing the server's
# IPv6 address, no DKIM record and DMARC p=none.
SIMULATED_ZONE = {
    # example.org: all good
    "example.org": [txt(f"v=spf1 mx ip6:{SERVER_IPV6} -all"), ("MX", "10 mail.example.org.")],
    "mail.example.org": [("A", SERVER_IPV4)],
    "dkim._domainkey.example.org": [txt(f"v=DKIM1;k=rsa;t=s;s=email;p={DKIM_PUBKEY}")],
    "_dmarc.example.org": [txt("v=DMARC1; p=reject; rua=mailto:dmarc@example.org")],
    # example.net: SPF without our IPv6, no DKIM record, DMARC p=none
    "example.net": [txt(f"v=spf1 ip4:{SERVER_IPV4} ~all")],
    "_dmarc.example.net": [txt("v=DMARC1; p=none")],
}
