"""Build the provisioned Grafana dashboards from code and write them as JSON.

Usage: .venv/bin/python -m dashboards.generate [--check]
Each dashboard is built by its own module from the helpers in `dashboards.kit`; `--check` exits 1
when a committed file differs from what this code builds (the test suite runs the same comparison).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from dashboards import delivery, dmarc, domains, health, logs, message_details, messages, overview, queue, security

HERE = Path(__file__).parent
BUILDERS: dict[str, Callable[[], dict]] = {
    "mailcow-overview.json": overview.build,
    "mailcow-messages.json": messages.build,
    "mailcow-message-details.json": message_details.build,
    "mailcow-delivery.json": delivery.build,
    "mailcow-security.json": security.build,
    "mailcow-logs.json": logs.build,
    "mailcow-queue.json": queue.build,
    "mailcow-dmarc.json": dmarc.build,
    "mailcow-domains.json": domains.build,
    "mailcow-health.json": health.build,
}


def build_all() -> dict[str, dict]:
    """Every dashboard's JSON model by its file name."""
    return {name: build() for name, build in BUILDERS.items()}


def render(board: dict) -> str:
    """The file's text: indented JSON, non-ASCII characters as they are, a final newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    """Write every dashboard, or with --check name the stale ones and exit 1."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file differs")
    args = parser.parse_args()
    stale = []
    for name, board in build_all().items():
        path = HERE / name
        text = render(board)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.write_text(text)
    if stale:
        print("out of date (run python -m dashboards.generate):", ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
