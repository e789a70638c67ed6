"""Find the reports inside whatever arrived: XML, JSON, gzip, zip, or an e-mail carrying any of
them. The format is detected from the bytes, never the file name, and every decompression is
bounded in size and ratio so a bomb costs milliseconds and a few megabytes, not the machine."""

from __future__ import annotations

import email
import email.policy
import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from exporter.dmarc.errors import InvalidReport

MAX_INPUT = 50 * 1024 * 1024  # bytes of one upload or mail
MAX_EXPANDED = 100 * 1024 * 1024  # bytes one report may decompress to
MAX_RATIO = 200  # decompressed / compressed: XML compresses ~20-40x, bombs ~1000x
MAX_MEMBERS = 50  # zip members looked at
MAX_DEPTH = 3  # containers inside containers (mail -> zip -> gzip)

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


def _bounded(read: Iterator[bytes], compressed: int, origin: str) -> bytes:
    limit = min(MAX_EXPANDED, max(compressed, 1024) * MAX_RATIO)
    out = bytearray()
    for chunk in read:
        out += chunk
        if len(out) > limit:
            raise InvalidReport(
                f"{origin}: decompresses to more than {limit:,} bytes (ratio limit {MAX_RATIO}x, size limit "
                f"{MAX_EXPANDED:,}); refusing a possible decompression bomb"
            )
    return bytes(out)


def gunzip(data: bytes, origin: str) -> bytes:
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
        return _bounded(chunks(), len(data), origin)
    except zlib.error as exc:
        raise InvalidReport(f"{origin}: not a valid gzip stream ({exc})") from None


def unzip(data: bytes, origin: str) -> Iterator[tuple[str, bytes]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()][:MAX_MEMBERS]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InvalidReport(f"{origin}: not a valid zip archive ({exc})") from None
    for member in members:
        name = f"{origin} > {member.filename}"
        if member.file_size > MAX_EXPANDED or member.file_size > max(member.compress_size, 1024) * MAX_RATIO:
            raise InvalidReport(
                f"{name}: claims {member.file_size:,} bytes from {member.compress_size:,}; refusing a possible "
                "decompression bomb"
            )
        try:
            with archive.open(member) as handle:
                yield name, _bounded(iter(lambda h=handle: h.read(1024 * 1024), b""), member.compress_size, name)
        except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError, EOFError) as exc:
            raise InvalidReport(f"{name}: cannot be extracted ({exc})") from None


def payloads(data: bytes, origin: str = "file", depth: int = 0) -> Iterator[Payload]:
    """Every XML or JSON document inside `data`, unwrapping gzip, zip and e-mail."""
    if len(data) > MAX_INPUT:
        raise InvalidReport(f"{origin}: {len(data):,} bytes is over the {MAX_INPUT:,}-byte limit")
    if not data.strip():
        raise InvalidReport(f"{origin}: the file is empty")
    if depth > MAX_DEPTH:
        raise InvalidReport(f"{origin}: containers nested more than {MAX_DEPTH} deep")
    kind = kind_of(data)
    if kind == "gzip":
        yield from payloads(gunzip(data, origin), origin, depth + 1)
    elif kind == "zip":
        for name, member in unzip(data, origin):
            if kind_of(member) in ("xml", "json", "gzip", "zip"):
                yield from payloads(member, name, depth + 1)
    elif kind in ("xml", "json"):
        yield Payload(data, origin)
    elif kind == "email":
        yield from mail_payloads(data, origin, depth)
    else:
        raise InvalidReport(f"{origin}: not a report (neither XML, JSON, gzip, zip nor an e-mail)")


_SKIP = ("multipart/", "text/html", "message/delivery-status")


def mail_payloads(data: bytes, origin: str, depth: int) -> Iterator[Payload]:
    """Reports carried by any part of an e-mail (attachments, inline parts, a single-part body)."""
    message = email.message_from_bytes(data, policy=email.policy.compat32)
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
        name = f"{origin} > part {number} ({ctype}{', ' + part.get_filename() if part.get_filename() else ''})"
        kind = kind_of(body)
        if ctype.startswith("text/") and kind not in ("xml", "json"):
            continue  # the human-readable cover text
        if kind in ("gzip", "zip", "xml", "json") or ctype.startswith("application/tlsrpt"):
            found = True
            yield from payloads(body, name, depth + 1)
    if not found and (failure or _EXIM_FAILURE in data):
        yield Payload(data, origin, "failure")  # the whole mail is the report
    elif not found:
        raise InvalidReport(f"{origin}: the e-mail carries no DMARC or TLS report")
