"""The one way report XML is parsed: lxml with entity substitution, DTD loading, network access and
huge trees (deeper than 256 levels, text over 10 MB) all off, and a document refused when it has a
DTD or an entity reference anywhere, however far into the file. Nothing is ever expanded, so memory
stays proportional to the document: at worst ~30 bytes per byte (a file of nothing but empty tags),
which the tag limit caps at a few hundred megabytes, the size of the largest report we accept."""

from __future__ import annotations

import re

from lxml import etree

from exporter.parsers.dmarc.errors import InvalidReport

MAX_TAGS = 4_000_000  # "<" in one document: a record has 30-45, so room for 100,000 records
Element = etree._Element

_BETWEEN_TAGS = re.compile(r">\s+<")
_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.S)


def decode(data: bytes) -> str:
    """The document as text: UTF-16 (BOM or not) or UTF-8, invalid bytes dropped and BOM removed,
    without the XML declaration (the text is already decoded; lxml refuses one naming an encoding)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="ignore")
    elif data[:2] == b"<\x00":
        text = data.decode("utf-16-le", errors="ignore")
    elif data[:2] == b"\x00<":
        text = data.decode("utf-16-be", errors="ignore")
    else:
        text = data.decode("utf-8", errors="ignore")
    text = _DECLARATION.sub("", text.lstrip("\ufeff \t\r\n"), count=1).lstrip()
    return _BETWEEN_TAGS.sub("><", text)  # indentation only: the parser then builds far fewer strings


def _parser(recover: bool) -> etree.XMLParser:
    """A new parser per document: lxml's parsers must not be shared between threads."""
    return etree.XMLParser(
        recover=recover,
        resolve_entities=False,
        load_dtd=False,
        no_network=True,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse(text: str) -> tuple[Element, str | None]:
    """The root element, and the strict parser's complaint when the document was not well-formed
    and had to be recovered (None when it was well-formed)."""
    tags = text.count("<")
    if tags > MAX_TAGS:
        raise InvalidReport(f"{tags:,} tags is over the {MAX_TAGS:,}-tag limit")
    complaint = None
    try:  # ValueError: lxml's own refusal, e.g. of a second declaration naming an encoding
        root = etree.fromstring(text, _parser(recover=False))
    except (etree.XMLSyntaxError, ValueError) as exc:
        complaint = str(exc)
        try:
            root = etree.fromstring(text, _parser(recover=True))
        except (etree.XMLSyntaxError, ValueError):
            root = None
        if root is None:
            raise InvalidReport(f"not well-formed XML: {complaint}") from None
    if root.getroottree().docinfo.doctype or next(root.iter(etree.Entity), None) is not None:
        raise InvalidReport("DTDs and entities are not allowed in a report")
    return root, complaint
