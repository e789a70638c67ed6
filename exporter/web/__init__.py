"""The REST adapter: seed 002's paths, the action endpoints and their confirmation pages, /metrics."""

from __future__ import annotations

from exporter.web import (
    action_pages,
    actions,
    api,
    dmarc,
    domains,
    export,
    index,
    login,
    logs,
    mailbox_stats,
    mailcow_state,
    messages,
    metrics,
    raw_logs,
    settings,
    stats,
)

BLUEPRINTS = (
    index.bp,
    login.bp,
    api.bp,
    messages.bp,
    logs.bp,
    raw_logs.bp,
    raw_logs.tail_bp,
    stats.bp,
    export.bp,
    settings.bp,
    metrics.bp,
    mailcow_state.bp,
    actions.bp,
    dmarc.bp,
    domains.bp,
    mailbox_stats.bp,
    action_pages.bp,
)
PREFLIGHT_ENDPOINTS = actions.PREFLIGHT_ENDPOINTS
