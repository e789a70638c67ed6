"""The gunicorn worker `serve` runs: gthread, but the errors gunicorn answers itself, before the app sees
the request (a request line over 4094 bytes, a control character in a header, any request it cannot
parse), are the JSON envelope with the security headers too, not gunicorn's HTML page."""

from __future__ import annotations

import html
import json
import re
import socket
from typing import Any

from gunicorn.workers.gthread import ThreadWorker
from werkzeug.http import HTTP_STATUS_CODES

from exporter.http.errors import code_for
from exporter.http.origin import SECURITY_HEADERS

_PAGE_DETAIL = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.DOTALL)  # the message in gunicorn's error page


def _envelope(status: int, detail: str) -> bytes:
    """A whole HTTP response: the envelope {"error", "detail", "code"} and the security headers."""
    name = HTTP_STATUS_CODES.get(status, "Error")
    body = json.dumps({"error": name, "detail": detail or name, "code": code_for(name)}).encode()
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
        **SECURITY_HEADERS,
    }
    head = f"HTTP/1.1 {status} {name}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("latin-1") + body


class _EnvelopeSocket:
    """The client's socket as gunicorn's error writer sees it: the status and message of the page it writes
    go out as the envelope. gunicorn keeps deciding the status, logging and the access log."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def sendall(self, page: bytes) -> None:
        status = int(page.split(b" ", 2)[1])  # "HTTP/1.1 414 URI Too Long\r\n..."
        found = _PAGE_DETAIL.search(page)
        self._sock.sendall(_envelope(status, html.unescape(found.group(1).decode("latin-1")) if found else ""))


class Worker(ThreadWorker):
    """gunicorn's gthread worker with its own error answers in the envelope."""

    def handle_error(self, req: Any, client: socket.socket, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, _EnvelopeSocket(client), addr, exc)
