"""Live tails of raw log lines: one LISTEN per process wakes every waiting tail when lines are stored.

The loader NOTIFYs `raw_lines` with the newest id at each commit (exporter/store/raw_logs.py). A tail
(the REST websocket, Loki's tail) sleeps in `TailHub.wait` until a newer id arrives, then reads its
new lines with its own filters (`id > seen`) in PostgreSQL. Idle tails cost nothing but a timed wait;
a lost notification or a database restart only delays a tail until its wait times out and it
reads anyway, while the listener reconnects by itself.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from exporter.store import raw_logs as store

log = logging.getLogger(__name__)

RECONNECT_WAIT = 2.0


class TailHub:
    """The newest stored line id, pushed by PostgreSQL; started on first use, one per process."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.latest = 0
        self._changed = threading.Condition()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> TailHub:
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._listen, name="raw-tail-listener", daemon=True).start()
        return self

    def wait(self, seen: int, timeout: float) -> int:
        """Block until a line newer than `seen` is stored, or `timeout` seconds; return the newest id known."""
        self.start()
        with self._changed:
            self._changed.wait_for(lambda: self.latest > seen, timeout)
            return self.latest

    def _publish(self, latest: int) -> None:
        with self._changed:
            if latest > self.latest:
                self.latest = latest
                self._changed.notify_all()

    def _listen(self) -> None:
        stop = threading.Event()  # never set: the listener lives as long as the process
        while not stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f"LISTEN {store.CHANNEL}")
                    self._publish(store.newest_id(conn))  # what was stored while not listening
                    for note in conn.notifies():
                        self._publish(int(note.payload))
            except (psycopg.Error, ValueError) as exc:
                log.warning("raw log tail listener: %s; reconnecting", exc)
            stop.wait(RECONNECT_WAIT)


_hubs: dict[str, TailHub] = {}
_hubs_lock = threading.Lock()


def hub(conninfo: str) -> TailHub:
    """The process's hub for this database."""
    with _hubs_lock:
        return _hubs.setdefault(conninfo, TailHub(conninfo))
