"""The DMARC IMAP import as `/api/dmarc/imap` shows it (seed 002): its settings, one sync run, the
history of runs."""

from __future__ import annotations

from typing import Any

from exporter.config import Config
from exporter.readmodels.format import iso
from exporter.store.dmarc_imap import SyncRun

IMAP_DISABLED = {"status": "disabled", "message": "DMARC IMAP sync is not enabled"}


def sync_row(row: SyncRun, history: bool = False) -> dict[str, Any]:
    """A sync run as seed 002 shows it: `sync_id` in status/sync answers, `id` + duration in history."""
    done = row.completed_at
    out: dict[str, Any] = {"id": row.id} if history else {"sync_id": row.id}
    out.update(sync_type=row.sync_type, status=row.status, started_at=iso(row.started_at), completed_at=iso(done))
    if history:
        out["duration_seconds"] = int((done - row.started_at).total_seconds()) if done else None
    return out | {
        "emails_found": row.emails_found,
        "emails_processed": row.emails_processed,
        "reports_created": row.reports_created,
        "reports_duplicate": row.reports_duplicate,
        "reports_failed": row.reports_failed,
        "error_message": row.error_message,
        "failed_emails": row.failed_emails,
    }


def sync_history(rows: list[SyncRun]) -> dict[str, Any]:
    return {"data": [sync_row(r, history=True) for r in rows]}


def imap_status(config: Config, last: SyncRun | None) -> dict[str, Any]:
    """The IMAP import's settings (no password) and its last run."""
    return {
        "enabled": config.dmarc_imap_enabled,
        "manual_upload_enabled": config.dmarc_manual_upload_enabled,
        "host": config.dmarc_imap_host,
        "port": config.dmarc_imap_port,
        "use_ssl": config.dmarc_imap_use_ssl,
        "user": config.dmarc_imap_user,
        "folder": config.dmarc_imap_folder,
        "archive_folder": config.dmarc_imap_archive_folder,
        "invalid_folder": config.dmarc_imap_invalid_folder,
        "interval_seconds": config.dmarc_imap_interval,
        "delete_after_processing": config.dmarc_imap_delete_after,
        "last_sync": sync_row(last) if last else None,
    }
