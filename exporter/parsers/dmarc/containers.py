"""Find the reports inside whatever arrived: XML, JSON, gzip, zip, or an e-mail carrying any of
them. The format is detected from the bytes, never the file name. Every decompression is bounded
in ratio, and all of one file's together in size, so a bomb costs milliseconds and a few megabytes,
not the machine; an e-mail is bounded in parts (and so in nesting depth) while it is parsed."""

from __future__ import annotations

import email.policy
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from typing import Any

from exporter.parsers.dmarc.errors import InvalidReport

MAX_INPUT = 50 * 1024 * 1024  # bytes of one upload or mail
MAX_EXPANDED = 100 * 1024 * 1024  # bytes one file may decompress to, all its containers together
MAX_RATIO = 200  # decompressed / compressed: XML compresses ~20-40x, bombs ~1000x
MAX_MEMBERS = 50  # zip members looked at
MAX_DEPTH = 3  # containers inside containers (mail -> zip -> gzip)
MAX_MAIL_PARTS = 100  # MIME parts of one e-mail, nested ones included; report mails have 2-10

_GZIP = b"\x1f\x8b"
_EXIM_FAILURE = b"A message claiming to be from you has failed"
_ZIP = b"PK\x03\x04"


@dataclass(frozen=True)
class Payload:
    """One candidate report document: XML or JSON bytes and where it came from."""

    data: bytes
    origin: str  # e.g. "report.xml.gz", "mail part 2 (application/zip) > a.xml"
    kind: str = ""  # "failure" for a failure-report e-mail; else detected from the bytes


def kind_of(data: bytes) -> str:
    """'gzip', 'zip', 'xml', 'json', 'email' or 'unknown', from the first bytes."""
    head = data[:4096]
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZIP):
        return "zip"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(head) > 1 and head[0:1] == b"<" and head[1:2] == b"\x00"):
        return "xml"  # UTF-16 XML
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return "xml"
    if text.startswith((b"{", b"[")):
        return "json"
    first_line = text.split(b"\n", 1)[0]
    if b":" in first_line and all(32 <= c < 127 or c in (9, 13) for c in first_line):
        return "email"  # a header line such as "Return-Path: <...>" or "Received: ..."
    return "unknown"


@dataclass
class Budget:
    """The bytes one file may still decompress to, shared by all its containers: a zip of 50
    members or a mail of 100 parts costs no more than one bomb."""

    left: int = MAX_EXPANDED

    def take(self, chunks: Iterator[bytes], compressed: int, origin: str) -> bytes:
        """The decompressed bytes, refused once they pass the ratio limit or what is left."""
        limit = min(self.left, max(compressed, 1024) * MAX_RATIO)
        out = bytearray()
        for chunk in chunks:
            out += chunk
            if len(out) > limit:
                raise InvalidReport(
                    f"{origin}: decompresses to more than {limit:,} bytes (ratio limit {MAX_RATIO}x, "
                    f"{MAX_EXPANDED:,} bytes per file); refusing a possible decompression bomb"
                )
        self.left -= len(out)
        return bytes(out)


def gunzip(data: bytes, origin: str, budget: Budget) -> bytes:
    def chunks() -> Iterator[bytes]:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        rest = data
        while rest:
            yield decompressor.decompress(rest, 1024 * 1024)
            rest = decompressor.unconsumed_tail
            if decompressor.eof:
                break
        if not decompressor.eof:
            raise InvalidReport(f"{origin}: the gzip stream is truncated")

    try:
        return budget.take(chunks(), len(data), origin)
    except zlib.error as exc:
        raise InvalidReport(f"{origin}: not a valid gzip stream ({exc})") from None


def unzip(data: bytes, origin: str, budget: Budget) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()][:MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidReport(f"{origin}: not a valid zip archive ({exc})") from None
    for member in members:
        name = printable(f"{origin} > {member.filename}")
        if member.file_size > budget.left or member.file_size > max(member.compress_size, 1024) * MAX_RATIO:
            raise InvalidReport(
                f"{name}: claims {member.file_size:,} bytes from {member.compress_size:,}; refusing a possible "
                "decompression bomb"
            )
        try:
            with archive.open(member) as handle:
                yield name, budget.take(iter(lambda h=handle: h.read(1024 * 1024), b""), member.compress_size, name)
        except (
            zipfile.BadZipFile,
            zlib.error,
            OSError,
            ValueError,
            NotImplementedError,
            RuntimeError,
            EOFError,
        ) as exc:
            raise InvalidReport(f"{name}: cannot be extracted ({exc})") from None


def payloads(data: bytes, origin: str = "file") -> Iterator[Payload]:
    """Every XML or JSON document inside `data`, unwrapping gzip, zip and e-mail."""
    return _unwrap(data, printable(origin), 0, Budget())


def printable(text: str) -> str:
    """A name from the sender (file, zip member, MIME part) as shown and stored: control characters
    (NUL, which PostgreSQL cannot store, included) and undecodable bytes become U+FFFD."""
    return "".join(c if c.isprintable() else "\ufffd" for c in text)


def _unwrap(data: bytes, origin: str, depth: int, budget: Budget) -> Iterator[Payload]:
    if len(data) > MAX_INPUT:
        raise InvalidReport(f"{origin}: {len(data):,} bytes is over the {MAX_INPUT:,}-byte limit")
    if not data.strip():
        raise InvalidReport(f"{origin}: the file is empty")
    if depth > MAX_DEPTH:
        raise InvalidReport(f"{origin}: containers nested more than {MAX_DEPTH} deep")
    kind = kind_of(data)
    if kind == "gzip":
        yield from _unwrap(gunzip(data, origin, budget), origin, depth + 1, budget)
    elif kind == "zip":
        for name, member in unzip(data, origin, budget):
            if kind_of(member) in ("xml", "json", "gzip", "zip"):
                yield from _unwrap(member, name, depth + 1, budget)
    elif kind in ("xml", "json"):
        yield Payload(data, origin)
    elif kind == "email":
        yield from _mail_payloads(data, origin, depth, budget)
    else:
        raise InvalidReport(f"{origin}: not a report (neither XML, JSON, gzip, zip nor an e-mail)")


def parse_mail(data: bytes) -> Message:
    """The e-mail, refused as soon as the parser makes more than MAX_MAIL_PARTS parts. Each level of
    nesting is a part, so this also bounds how deep the (recursive) MIME parser and walk() go."""
    parts = 0

    def new_part(**kwargs: Any) -> Message:
        nonlocal parts
        parts += 1
        if parts > MAX_MAIL_PARTS:
            raise InvalidReport(f"the e-mail has more than {MAX_MAIL_PARTS} MIME parts (or is nested that deep)")
        return Message(**kwargs)

    return BytesParser(policy=email.policy.compat32.clone(message_factory=new_part)).parsebytes(data)


_SKIP = ("multipart/", "text/html", "message/delivery-status")


def _mail_payloads(data: bytes, origin: str, depth: int, budget: Budget) -> Iterator[Payload]:
    """Reports carried by any part of an e-mail (attachments, inline parts, a single-part body)."""
    try:
        message = parse_mail(data)
    except InvalidReport as exc:
        raise InvalidReport(f"{origin}: {exc}") from None
    found = failure = False
    for number, part in enumerate(message.walk(), start=1):
        ctype = part.get_content_type()
        failure = failure or ctype == "message/feedback-report"
        if ctype.startswith(_SKIP) or part.is_multipart():
            continue
        try:
            body = part.get_payload(decode=True)
        except (ValueError, LookupError):
            continue
        if not body:
            continue
        filename = part.get_filename()
        name = printable(f"{origin} > part {number} ({ctype}{', ' + filename if filename else ''})")
        kind = kind_of(body)
        if ctype.startswith("text/") and kind not in ("xml", "json"):
            continue  # the human-readable cover text
        if kind in ("gzip", "zip", "xml", "json") or ctype.startswith("application/tlsrpt"):
            found = True
            yield from _unwrap(body, name, depth + 1, budget)
    if not found and (failure or _EXIM_FAILURE in data):
        yield Payload(data, origin, "failure")  # the whole mail is the report
    elif not found:
        raise InvalidReport(f"{origin}: the e-mail carries no DMARC or TLS report")
