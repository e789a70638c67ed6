"""IMAP auto-import of report mails (imap-tools): new mail is read in batches, every report is
committed to PostgreSQL, and only then is the batch moved (reports to the archive folder, mail
without a report to the invalid folder; deleted instead when DMARC_IMAP_DELETE_AFTER). A crash
between the two leaves the mail in place: the next run finds its reports already stored
(duplicates) and moves it then. Nothing is lost, nothing is stored twice."""

from __future__ import annotations

import logging
from collections.abc import Callable
from email.parser import BytesParser
from typing import Any

from imap_tools import AND, MailBox, MailBoxUnencrypted
from imap_tools.message import MailMessage
from psycopg_pool import ConnectionPool

from exporter.config import Config
from exporter.parsers.dmarc.containers import printable
from exporter.parsers.dmarc.errors import InvalidReport
from exporter.services.dmarc import import_bytes, reverse_dns
from exporter.services.geoip import GeoIP
from exporter.store import dmarc_imap as sync_store
from exporter.store.dmarc_imap import SyncRun

log = logging.getLogger(__name__)


class RawMessage(MailMessage):
    """A fetched mail that keeps its exact bytes (parsing works on those). Unlike imap-tools' own
    __init__, which this mirrors, it parses only the headers (uid, subject and message-id are all the
    sync reads): a full parse of a hostile mail nested 2,000 deep would overflow the stack inside
    fetch(); the report parser parses the whole mail with its part limit."""

    def __init__(self, fetch_data: list) -> None:
        self.raw, self._raw_uid_data, self._raw_flag_data = self._get_message_data_parts(fetch_data)
        self.obj = BytesParser().parsebytes(self.raw, headersonly=True)


class _MailBox(MailBox):
    email_message_class = RawMessage


class _PlainMailBox(MailBoxUnencrypted):
    email_message_class = RawMessage


def _connect(config: Config) -> MailBox:
    cls = _MailBox if config.dmarc_imap_use_ssl else _PlainMailBox
    box = cls(config.dmarc_imap_host, config.dmarc_imap_port, timeout=30)
    box.login(config.dmarc_imap_user, config.dmarc_imap_password, initial_folder=config.dmarc_imap_folder)
    return box


def _folder(box: MailBox, name: str) -> str:
    """The configured folder in the server's own hierarchy separator ("Archive/DMARC" -> "Archive.DMARC"),
    created when missing."""
    listed = box.folder.list()
    delimiter = next((f.delim for f in listed if f.delim), "/")
    name = name.replace("/", delimiter)
    if not box.folder.exists(name):
        box.folder.create(name)
    return name


def sync(
    config: Config,
    pool: ConnectionPool,
    geo: GeoIP | None,
    sync_type: str,
    after_store: Callable[[list[str]], None] | None = None,
) -> SyncRun:
    """One run over the folder; returns the stored sync-history row. `after_store` runs after a
    batch is committed and before it is moved (tests inject a crash there)."""
    sync_id = sync_store.sync_started(pool, sync_type)
    counts = dict.fromkeys(
        ("emails_found", "emails_processed", "reports_created", "reports_duplicate", "reports_failed"), 0
    )
    failed: list[dict[str, Any]] = []
    rdns = reverse_dns if config.dmarc_reverse_dns else None
    try:
        with _connect(config) as box:
            archive = _folder(box, config.dmarc_imap_archive_folder)
            invalid_folder = _folder(box, config.dmarc_imap_invalid_folder)
            box.folder.set(config.dmarc_imap_folder)
            uids = box.uids("ALL")
            counts["emails_found"] = len(uids)
            size = config.dmarc_imap_batch_size
            for start in range(0, len(uids), size):
                done, invalid = [], []
                for message in box.fetch(AND(uid=uids[start : start + size]), mark_seen=False, bulk=True):
                    origin = f"imap:{config.dmarc_imap_folder}/{message.uid}"
                    try:
                        result = import_bytes(pool, message.raw, origin, geo, rdns, channel="imap")
                    except InvalidReport as exc:
                        invalid.append(message.uid)
                        counts["reports_failed"] += 1
                        failed.append(
                            {
                                "email_id": message.uid,
                                "message_id": printable(message.headers.get("message-id", ("",))[0]),
                                "subject": printable(message.subject),
                                "error": str(exc),
                            }
                        )
                        continue
                    done.append(message.uid)
                    counts["emails_processed"] += 1
                    counts["reports_created"] += len(result.created)
                    counts["reports_duplicate"] += len(result.duplicates)
                if after_store is not None:
                    after_store(done + invalid)
                if done:
                    if config.dmarc_imap_delete_after:
                        box.delete(done)
                    else:
                        box.move(done, archive)
                if invalid:
                    box.move(invalid, invalid_folder)
    except Exception as exc:  # the run is recorded as failed; the mail stays for the next run
        log.warning("DMARC IMAP sync failed: %s", exc)
        return sync_store.sync_finished(pool, sync_id, "error", counts, str(exc) or type(exc).__name__, failed)
    error = f"{len(failed)} emails failed to process" if failed else None
    return sync_store.sync_finished(pool, sync_id, "success", counts, error, failed or None)
