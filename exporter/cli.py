"""The `mailcow-grafana` command: parses the command line and runs one command (`--help` lists them).

The process set-up that `serve`, `run` and `demo` share lives in `exporter.serve`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from exporter import __version__, passwords
from exporter.config import Config, ConfigError, load_config
from exporter.log_format import FORMATS as LOG_FORMATS
from exporter.serve import Fatal, configure, database_url, gunicorn, serve_and_work, setup_logging, web_config
from exporter.store.database import create_pool, migrate, start_embedded
from exporter.worker.supervisor import stop_process

DEFAULT_BIND = "127.0.0.1:8088"


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


# --- commands --------------------------------------------------------------------------


def cmd_check_config(_: argparse.Namespace) -> int:
    config = load_config()
    for key, value in config.masked().items():
        print(f"{key.upper()}={json.dumps(value) if not isinstance(value, str) else value}")
    return 0


def cmd_hash_password(_: argparse.Namespace) -> int:
    """Print an argon2id hash for AUTH_PASSWORD: the password from a prompt (asked twice), or the first
    line of stdin when it is not a terminal (no echo, nothing in the shell history)."""
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise Fatal("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise Fatal("the password is empty")
    print(passwords.hash_password(password))
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    config = configure(require_mailcow=False)
    url = config.database_url or start_embedded(config.embedded_db_dir)
    applied = migrate(url)
    print(f"applied {len(applied)} migration(s)" + (f": {', '.join(map(str, applied))}" if applied else ""))
    return 0


def cmd_import_logs(args: argparse.Namespace) -> int:
    from zoneinfo import ZoneInfo

    from exporter.services.backfill import import_files
    from exporter.store.mailcow import local_domains

    config = configure(require_mailcow=False)
    url = config.database_url or start_embedded(config.embedded_db_dir)
    migrate(url)
    missing = [p for p in args.files if not p.is_file()]
    if missing:
        raise Fatal(f"no such file: {missing[0]}")
    pool = create_pool(url, 3)  # loader and correlation threads, and one spare
    try:
        totals = import_files(
            pool,
            args.files,
            ZoneInfo(args.tz or config.timezone),
            local_domains(pool, config.local_domains),
            progress=not args.quiet,
        )
    finally:
        pool.close()
    print(
        f"read {totals['lines']} lines ({totals['skipped']} not Postfix), stored {totals['inserted']} new, "
        f"correlated {totals['messages']} messages"
    )
    return 0


def cmd_import_dmarc(args: argparse.Namespace) -> int:
    """DMARC / TLS-RPT report files and folders (recursively); a bad file is reported, never fatal."""
    from tqdm import tqdm

    from exporter.parsers.dmarc.errors import InvalidReport
    from exporter.services.dmarc import import_bytes, reverse_dns
    from exporter.services.geoip import GeoIP

    config = configure(require_mailcow=False)
    files: list[Path] = []
    for path in args.paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise Fatal(f"no such file or folder: {path}")
    url = config.database_url or start_embedded(config.embedded_db_dir)
    migrate(url)
    pool = create_pool(url, 2)
    geo = GeoIP(config.geoip_city_db, config.geoip_asn_db)
    rdns = reverse_dns if config.dmarc_reverse_dns else None
    created = duplicates = 0
    failed: list[str] = []
    try:
        for path in tqdm(files, unit="file", disable=args.quiet):
            try:
                result = import_bytes(pool, path.read_bytes(), path.name, geo, rdns, "file")
            except InvalidReport as exc:
                failed.append(f"{path}: {exc}")
                continue
            created += len(result.created)
            duplicates += len(result.duplicates)
    finally:
        pool.close()
    for line in failed:
        print(f"skipped {line}", file=sys.stderr)
    print(f"{len(files)} files: {created} reports stored, {duplicates} already there, {len(failed)} not readable")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    config = web_config(configure(), args.bind)
    gunicorn(config, database_url(config), args.bind, args.workers)
    return 0


def cmd_worker(_: argparse.Namespace) -> int:
    from exporter.worker.loop import run_worker

    config = configure()
    url = database_url(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    pool = create_pool(url, config.db_pool_size)
    try:
        run_worker(dataclasses.replace(config, database_url=url), pool, stop)
    finally:
        pool.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = web_config(configure(), args.bind)  # fail closed here, before any child starts
    database_url(config)
    return serve_and_work(config, args.bind, args.workers)


def _import_demo_reports(config: Config, url: str) -> None:
    """A week of DMARC and TLS reports about the demo domains, as receivers would send them."""
    from exporter.services.dmarc import import_bytes
    from exporter.services.geoip import GeoIP
    from exporter.simulator import reports

    migrate(url)
    pool = create_pool(url, 2)
    try:
        geo = GeoIP(config.geoip_city_db, config.geoip_asn_db)
        now = time.time()
        for n, data in enumerate(
            reports.aggregate_reports(now, config.local_domains) + reports.tls_reports(now, config.local_domains)
        ):
            import_bytes(pool, data, f"demo-report-{n}", geo)
    finally:
        pool.close()


def cmd_demo(args: argparse.Namespace) -> int:
    host, port = args.bind
    sim_port = _free_port()
    ro_key, rw_key = _mailcow_style_key(), _mailcow_style_key()
    os.environ.update(
        {
            "MAILCOW_URL": f"http://127.0.0.1:{sim_port}",
            "MAILCOW_API_KEY": ro_key,
            "MAILCOW_API_KEY_RW": rw_key,
            "LOCAL_DOMAINS": os.environ.get("LOCAL_DOMAINS", "example.org,example.net"),
        }
    )
    config = web_config(configure(), args.bind)
    simulator = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "exporter.cli",
            "simulate",
            "--bind",
            f"127.0.0.1:{sim_port}",
            "--ro-key",
            ro_key,
            "--rw-key",
            rw_key,
            "--history-minutes",
            "120",
        ],
        env=os.environ.copy(),
    )
    try:
        _wait_http(f"http://127.0.0.1:{sim_port}/api/v1/get/status/version", {"X-API-Key": ro_key}, simulator)
        _import_demo_reports(config, database_url(config))
        base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        print(
            f"\nmailcow-grafana {__version__} demo\n"
            f"  health:    {base}/api/health\n"
            f"  info:      {base}/api/info\n"
            f"  simulator: http://127.0.0.1:{sim_port}/api/v1/ (read-only key {ro_key})\n"
            f"  database:  {(config.database_url and 'DATABASE_URL') or f'embedded in {config.embedded_db_dir}'}\n",
            flush=True,
        )
        return serve_and_work(config, args.bind, args.workers)
    finally:
        stop_process(simulator)


def cmd_simulate(args: argparse.Namespace) -> int:
    from werkzeug.serving import make_server

    from exporter.simulator.app import create_simulator_app
    from exporter.simulator.state import MailcowState
    from exporter.simulator.traffic import Simulation

    log_format = os.environ.get("LOG_FORMAT") or "plain"  # the simulator reads no other setting
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT: Must be one of: {', '.join(LOG_FORMATS)}.")
    setup_logging(os.environ.get("LOG_LEVEL", "INFO").upper(), log_format)
    ro_key = args.ro_key or _mailcow_style_key()
    rw_key = args.rw_key or _mailcow_style_key()
    state = MailcowState(log_cap=args.log_cap)
    sim = Simulation(state, seed=args.seed, start=time.time() - args.history_minutes * 60, rate_per_minute=args.rate)
    sim.advance()
    host, port = args.bind
    server = make_server(host, port, create_simulator_app(sim, ro_key, rw_key), threaded=True)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"mailcow simulator on http://{host}:{port}/api/v1/  ro key {ro_key}  rw key {rw_key}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


# --- helpers ---------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mailcow_style_key() -> str:
    """A key shaped like the ones mailcow's UI generates: 5 groups of 6 upper-case hex digits."""
    return "-".join(secrets.token_hex(3).upper() for _ in range(5))


def _wait_http(url: str, headers: dict[str, str], process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Fatal("the mailcow simulator exited during start-up")
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise Fatal(f"the mailcow simulator did not answer at {url}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailcow-grafana",
        description="mailcow's logs and state for Grafana: the web API, the background worker and their tools.",
        epilog="`mailcow-grafana COMMAND --help` shows a command's options; the settings are environment variables.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands")

    def web_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--bind", type=_bind, default=_bind(DEFAULT_BIND), help=f"HOST:PORT (default {DEFAULT_BIND})")
        p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")

    web_args(sub.add_parser("serve", help="the web API under gunicorn"))
    sub.add_parser("worker", help="the background jobs (ingestion and the rest)")
    web_args(sub.add_parser("run", help="web API and background jobs together"))
    web_args(sub.add_parser("demo", help="run against the built-in mailcow simulator"))
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("check-config", help="validate and print the configuration, secrets masked")
    sub.add_parser("hash-password", help="print an argon2id hash for AUTH_PASSWORD (password from stdin or a prompt)")
    imp = sub.add_parser("import-logs", help="backfill from Postfix syslog files (plain or .gz)")
    imp.add_argument("files", nargs="+", type=Path, metavar="FILE")
    imp.add_argument("--tz", help="time zone of RFC 3164 stamps without offset (default: TZ)")
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    dm = sub.add_parser("import-dmarc", help="import DMARC and TLS-RPT report files or folders")
    dm.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    dm.add_argument("--quiet", action="store_true", help="no progress bar")
    sim = sub.add_parser("simulate", help="serve the mailcow API simulator")
    sim.add_argument("--bind", type=_bind, default=_bind("127.0.0.1:8089"), help="HOST:PORT (default 127.0.0.1:8089)")
    sim.add_argument("--seed", type=int, default=1, help="seed of the generated traffic")
    sim.add_argument("--rate", type=float, default=6.0, help="mails per minute")
    sim.add_argument("--history-minutes", type=int, default=60, help="traffic generated before start")
    sim.add_argument("--log-cap", type=int, default=10000, help="length of the capped log lists")
    sim.add_argument("--ro-key", default=os.environ.get("SIM_API_KEY"), help="read-only API key (default: random)")
    sim.add_argument("--rw-key", default=os.environ.get("SIM_API_KEY_RW"), help="read-write API key (default: random)")
    return parser


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "worker": cmd_worker,
    "run": cmd_run,
    "demo": cmd_demo,
    "simulate": cmd_simulate,
    "migrate": cmd_migrate,
    "check-config": cmd_check_config,
    "hash-password": cmd_hash_password,
    "import-logs": cmd_import_logs,
    "import-dmarc": cmd_import_dmarc,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, Fatal) as exc:
        print(f"mailcow-grafana: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
