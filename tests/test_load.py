"""Acceptance: 2,000 mails/min for 5 minutes with mailcow's caps and default settings loses nothing."""

from __future__ import annotations

from exporter.config_values import RAW_LOG_SERVICES
from tests.loadrun import run_load


def test_two_thousand_mails_a_minute_for_five_minutes_loses_nothing(databases):
    result = run_load(databases.create(), rate=2000, seconds=300)
    print("\n" + result.summary())
    assert result.mails > 9000
    assert result.lines_stored == result.lines_logged, "every Postfix line stored exactly once"
    assert result.rspamd_stored == result.rspamd_logged, "every rspamd row stored exactly once"
    assert result.gaps == 0
    assert not result.wrong and result.checked > 8000
    assert result.raw_lossless and set(result.raw) == set(RAW_LOG_SERVICES), "every line of every list stored once"
