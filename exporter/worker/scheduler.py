"""APScheduler wiring, the one module that loads it: the registry's plain schedules become its triggers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from exporter.config import Config
from exporter.worker.registry import JOBS, Job

# what the worker starts and shuts down, named here so that only this module loads APScheduler
Scheduler = BackgroundScheduler


def build_scheduler(config: Config, runner: Callable[[Job], Callable[[], object]]) -> Scheduler:
    """The scheduled jobs of JOBS that `config` enables, each calling what `runner` makes of it."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    now = datetime.now(UTC)
    for job in JOBS.values():
        if job.method is None or not job.enabled(config):
            continue
        first = {} if job.first_after is None else {"next_run_time": now + timedelta(seconds=job.first_after)}
        scheduler.add_job(runner(job), trigger(job, config), id=job.name, name=job.name, **first)
    return scheduler


def trigger(job: Job, config: Config) -> CronTrigger | IntervalTrigger:
    if job.daily_at is not None:
        return CronTrigger(hour=job.daily_at, minute=0, timezone=UTC)
    return IntervalTrigger(seconds=job.seconds(config), timezone=UTC)
