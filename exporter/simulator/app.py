"""The mailcow API as a Flask app, following `mailcow-api.md` §0-2 and its simulator checklist."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from flask import Flask, Response, request

from exporter.mailcow.client import LOG_SERVICES, MAILQ_ACTIONS
from exporter.simulator import accounts, phpjson
from exporter.simulator.services import api_log_data
from exporter.simulator.state import LOCAL_DOMAINS, MAILBOXES, REDIS_LOGS
from exporter.simulator.traffic import Simulation

DEFAULT_LOG_LINES = 1000  # $LOG_LINES in vars.inc.php
_KEY_CHARS = re.compile(r"[^a-zA-Z0-9-]")
_HEX = re.compile(r"^[0-9a-fA-F]+$")
SERVER_IPV4, SERVER_IPV6 = "203.0.113.10", "2001:db8::10"  # the simulated server's public addresses


def _json(
    value: Any,
    status: int = 200,
    *,
    pretty: bool = True,
    escape_slashes: bool = True,
    content_type: str = "application/json",
) -> Response:
    body = phpjson.encode(value, pretty=pretty, escape_slashes=escape_slashes)
    return Response(body, status=status, content_type=content_type)


def _error(msg: str, status: int, content_type: str = "application/json") -> Response:
    return _json({"type": "error", "msg": msg}, status, pretty=False, content_type=content_type)


def _route_not_found() -> Response:
    return _error("route not found", 404)


def _window(items: list, segment: str | None, zero_based: bool = False, sql: bool = False) -> list | None:
    """Apply mailcow's count/range semantics (§1.2) to a newest-first list; None = invalid."""
    if segment is None:
        return items[:DEFAULT_LOG_LINES]
    cleaned = re.sub(r"[^0-9-]", "", segment)
    if re.fullmatch(r"\d+", cleaned):
        count = int(cleaned)
        return items[:count] if count >= 1 else None
    match = re.fullmatch(r"(\d+)-(\d+)", cleaned)
    if not match:
        return None
    start, end = int(match.group(1)), int(match.group(2))
    if start < 1 or end < start:
        return None
    if zero_based:  # rspamd-history: /history?from=X&to=Y, 0-based inclusive
        return items[start : end + 1]
    if sql:  # LIMIT from-1, to
        return items[start - 1 : start - 1 + end]
    return items[start - 1 : end]


def _remaining(seconds: int) -> str:
    """netfilter's `banned_until` text: `%02dh %02dm %02ds`."""
    seconds = max(seconds, 0)
    return f"{seconds // 3600:02d}h {seconds % 3600 // 60:02d}m {seconds % 60:02d}s"


def create_simulator_app(sim: Simulation, ro_key: str, rw_key: str, *, advance_on_request: bool = True) -> Flask:
    """A Flask app answering like mailcow; `sim` supplies state and traffic."""
    app = Flask("mailcow-simulator")
    state = sim.state

    @app.get("/sim/ground-truth")
    def ground_truth() -> Response:
        """What really happened to every generated mail, per recipient (for correlation tests)."""
        return Response(json.dumps(sim.ground_truth()), content_type="application/json")

    @app.get("/sim/ground-truth/services")
    def service_truth() -> Response:
        """Per log list: lines ever logged, cap and lines held; every Dovecot delivery (for loss checks)."""
        return Response(json.dumps(sim.service_truth()), content_type="application/json")

    @app.post("/sim/fault")
    def fault() -> Response:
        """Make the API misbehave: {"mode": "server_error" | "slow" | null, "delay": seconds}."""
        body = request.get_json(silent=True) or {}
        if body.get("mode") not in (None, "server_error", "slow"):
            return _error("mode must be server_error, slow or null", 400)
        state.fault = body.get("mode")
        state.fault_delay = float(body.get("delay", 5))
        return _json({"mode": state.fault, "delay": state.fault_delay}, pretty=False)

    @app.route("/api/v1/", defaults={"query": ""}, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    @app.route("/api/v1/<path:query>", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    def api(query: str) -> Response:
        if advance_on_request:
            sim.advance()
        if state.fault == "server_error":  # mailcow's DB or dockerapi down (prerequisites.inc.php)
            return Response("<center>Connection to database failed</center>", status=500, content_type="text/html")
        if state.fault == "slow":
            time.sleep(state.fault_delay)
        now = int(sim.clock())
        remote = request.remote_addr or "127.0.0.1"
        with state.lock:
            state.push(
                "api",
                {"time": now, "uri": request.path, "method": request.method, "remote": remote, "data": _api_log_data()},
            )
        dest = request.headers.get("Sec-Fetch-Dest")
        if dest is not None and dest != "empty":
            return Response("", status=403, content_type="text/html; charset=UTF-8")

        raw_key = request.headers.get("X-API-Key")
        access: str | None = None
        if raw_key:  # PHP's !empty(): an empty header counts as no key
            key = _KEY_CHARS.sub("", raw_key)
            if key and key == rw_key:
                access = "rw"
            elif key and key == ro_key:
                access = "ro"
            else:
                with state.lock:
                    sim.netfilter_attempt(now, remote, 1, f"mailcow UI: Invalid password for API_USER by {remote}")
                return _error("authentication failed", 401, content_type="text/html; charset=UTF-8")

        parts = query.split("/")
        action = parts[0] if parts else ""
        category = parts[1] if len(parts) > 1 else ""
        obj = parts[2] if len(parts) > 2 else None
        extra = parts[3] if len(parts) > 3 else None  # a 5th segment is ignored

        if access is None:
            if action in ("add", "edit", "delete"):
                return _error("API read/write access denied", 403)
            return Response("", status=200, content_type="text/html; charset=UTF-8")
        if action not in ("get", "add", "edit", "delete", "search"):
            return _route_not_found()
        if action == "get":
            if request.method != "GET":
                return _error("only GET method is allowed", 405)
            return _get(category, obj, extra)
        if access == "ro" and action != "search":
            return _error("API read/write access denied", 403)
        body: Any = None
        if request.method != "GET" and request.get_data():
            try:
                body = json.loads(request.get_data())
            except ValueError:
                return _error("Request body doesn't contain valid json!", 400)
        if action == "edit" and not (isinstance(body, dict) and "items" in body):
            return _error("Cannot find attributes in post data", 200)
        if request.method != "POST":
            return _error("only POST method is allowed", 405)
        if action == "edit":
            return _edit(category, body)
        if action == "delete":
            return _delete(category, body)
        return _search(category, body)

    def _api_log_data() -> str:
        if request.method == "GET":
            return ""
        try:
            return api_log_data(json.loads(request.get_data() or b"null"))
        except ValueError:
            return ""

    def _get(category: str, obj: str | None, extra: str | None) -> Response:
        with state.lock:
            if category == "logs":
                return _logs(obj or "", extra)
            if category == "mailq" and obj == "all":
                return _json(list(state.queue.values()), pretty=False)
            if category == "quarantine":
                return _quarantine(obj)
            if category == "domain":
                if obj == "all":
                    return _listing([accounts.domain_details(state, d) for d in LOCAL_DOMAINS])
                if obj in LOCAL_DOMAINS:
                    return _json(accounts.domain_details(state, obj))
                return _json({})
            if category == "mailbox":
                return _mailboxes(obj, extra)
            if category == "alias":
                rows = accounts.all_aliases()
                if obj == "all":
                    return _listing(rows if extra is None else [r for r in rows if r["domain"] == extra])
                match = [r for r in rows if obj in (str(r["id"]), r["address"])]
                return _json(match[0] if match else {})
            if category == "dkim":
                return _json(accounts.dkim_details(obj or ""))
            if category == "status":
                return _status(obj, extra)
            if category == "fail2ban":
                return _json(_fail2ban(int(sim.clock())))
            if category in ("bcc", "syncjobs") and obj == "all":
                return _json({})
        return _route_not_found()

    def _listing(rows: list) -> Response:
        return _json(rows if rows else {})

    def _logs(service: str, segment: str | None) -> Response:
        if service not in LOG_SERVICES or service in state.missing_logs:
            return _route_not_found()
        if service == "rspamd-stats":
            return _json(_rspamd_stats())
        if service == "rspamd-history":
            rows = _window(list(state.rspamd_history), segment, zero_based=True)
        elif service in REDIS_LOGS:
            rows = _window(list(state.logs[service]), segment)
        else:
            rows = _window(list(state.ui_log if service == "ui" else state.sasl_log), segment, sql=True)
        return _json(rows if rows else {})

    def _rspamd_stats() -> dict[str, Any]:
        actions = {"reject": 0, "soft reject": 0, "rewrite subject": 0, "add header": 0, "greylist": 0, "no action": 0}
        for row in state.rspamd_history:
            actions[row["action"]] = actions.get(row["action"], 0) + 1
        scanned = sum(actions.values())
        out: dict[str, Any] = {
            "version": "4.1.4",
            "config_id": "7ikq",
            "uptime": 86012,
            "read_only": False,
            "scanned": scanned,
            "learned": 51,
        }
        if scanned:
            out["actions"] = actions
        out.update(
            {
                "spam_count": actions["reject"] + actions["add header"],
                "ham_count": scanned - actions["reject"] - actions["add header"],
                "connections": 3,
            }
        )
        return out

    def _quarantine(obj: str | None) -> Response:
        public = ("id", "qid", "subject", "virus_flag", "score", "rcpt", "sender", "action", "created", "notified")
        if obj == "all":
            return _json([{k: row[k] for k in public} for row in state.quarantine.values()])
        if obj and obj.isdigit() and int(obj) in state.quarantine:
            row = state.quarantine[int(obj)]
            full = {k: row[k] for k in ("id", "qid", "subject", "score", "ip", "action")}
            full.update(
                {
                    "symbols": json.dumps([{"name": "BAYES_SPAM", "score": 5.1}]),
                    "fuzzy_hashes": "[]",
                    "sender": row["sender"],
                    "rcpt": row["rcpt"],
                    "msg": f"From: <{row['sender']}>\r\nTo: <{row['rcpt']}>\r\n"
                    f"Subject: {row['subject']}\r\n\r\nspam\r\n",
                    "domain": None,
                    "notified": row["notified"],
                    "created": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(row["created"])),
                    "user": None,
                    "qhash": f"{row['id']:064x}",
                }
            )
            return _json(full)
        return _json([])

    def _mailboxes(obj: str | None, extra: str | None) -> Response:
        if obj in ("all", "reduced"):
            domains = set(extra.split(",")) if obj == "all" and extra else None
            rows = [
                accounts.mailbox_details(state, a, n, reduced=obj == "reduced")
                for a, n in MAILBOXES
                if domains is None or a.split("@")[1] in domains
            ]
            return _listing(rows)
        match = [accounts.mailbox_details(state, a, n) for a, n in MAILBOXES if a == obj]
        return _json(match[0] if match else {})

    def _status(obj: str | None, extra: str | None = None) -> Response:
        if obj == "containers":
            return _json(state.containers, pretty=False, escape_slashes=False)
        if obj == "vmail":
            used, total = state.vmail_used_bytes, state.vmail_total_bytes
            return _json(
                {
                    "type": "info",
                    "disk": "/dev/sda1",
                    "used": f"{round(used / 1e9)}G",
                    "total": f"{round(total / 1e9)}G",
                    "used_percent": f"{round(used * 100 / total)}%",
                },
                pretty=False,
                escape_slashes=False,
            )
        if obj == "version":
            return _json({"version": state.version}, pretty=False)
        if obj == "host" and extra == "ip":  # the server's public addresses (mailcow-api.md §2.14)
            return _json({"ipv4": SERVER_IPV4, "ipv6": SERVER_IPV6}, pretty=False)
        if obj == "host":
            return _json(
                {
                    "cpu": {"cores": 4, "usage": 7.3},
                    "memory": {
                        "total": 8321499136,
                        "usage": 61.2,
                        "swap": [2147479552, 524288000, 1623191552, 24.4, 1048576, 2097152],
                    },
                    "uptime": 864012.53,
                    "system_time": time.strftime("%d.%m.%Y %H:%M:%S"),
                    "architecture": "x86_64",
                },
                pretty=False,
            )
        return _route_not_found()

    def _fail2ban(now: int) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ban_time": 1800,
            "max_ban_time": 10000,
            "ban_time_increment": True,
            "max_attempts": 10,
            "retry_window": 600,
            "netban_ipv4": 32,
            "netban_ipv6": 128,
            "banlist_id": "0b7c2f1e-6a2d-4c58-9a0e-3d7a1f2b9c44",
            "manage_external": 0,
            "regex": {
                "1": "mailcow UI: Invalid password for .+ by ([0-9a-f\\.:]+)",
                "3": "warning: .*\\[([0-9a-f\\.:]+)\\]: SASL .+ authentication failed: "
                "(?!.*Connection lost to authentication server).+",
            },
            "whitelist": "192.0.2.10\n2001:db8::/64",
            "blacklist": "",
        }
        if state.active_bans:
            out["active_bans"] = [
                {
                    "queued_for_unban": 0,
                    "network": net,
                    "ip": net.split("/")[0],
                    "banned_until": _remaining(until - now),
                }
                for net, until in state.active_bans.items()
            ]
        return out

    def _envelope(kind: str, log: list, msg: Any) -> dict[str, Any]:
        return {"type": kind, "log": log, "msg": msg}

    def _edit(category: str, body: dict[str, Any]) -> Response:
        attr = body.get("attr") if isinstance(body.get("attr"), dict) else {}
        items = body.get("items") if isinstance(body.get("items"), list) else []
        action = attr.get("action")
        if category == "mailq":
            if action not in MAILQ_ACTIONS:
                return _json({"type": "success", "msg": "Task completed"}, pretty=False)
            qids = [str(i) for i in items if _HEX.match(str(i))]
            sim.queue_action(action, qids)
            log = ["process_mailq_output", "edit", {"qid": items, "action": action}]
            return _json([_envelope("success", log, "queue_command_success")], pretty=False)
        if category == "qitem":
            if action not in ("release", "learnham", "learnspam"):
                return _json({"type": "success", "msg": "Task completed"}, pretty=False)
            log = ["quarantine", "edit", {"id": items, "action": action}]
            out = []
            for item in items:
                ident = str(item)
                if not ident.isdigit() or int(ident) not in state.quarantine:
                    out.append(_envelope("danger", log, "access_denied"))
                    continue
                sim.quarantine_action(int(ident), action)
                if action == "learnspam":
                    out.append(_envelope("success", log, ["qlearn_spam", ident]))
                else:
                    out.append(_envelope("success", log, ["item_released", ident]))
                    out.append(_envelope("success", log, ["learned_ham", ident]))
            return _json(out, pretty=False)
        return _route_not_found()

    def _search(category: str, body: Any) -> Response:
        """DataTables server-side search over domains or mailboxes (§2.16)."""
        params = body if isinstance(body, dict) else {}
        with state.lock:
            if category == "domain":
                rows = [accounts.domain_details(state, d) for d in LOCAL_DOMAINS]
            elif category == "mailbox":
                rows = [accounts.mailbox_details(state, a, n) for a, n in MAILBOXES]
            else:
                return _error("Invalid search category", 404)
        term = str((params.get("search") or {}).get("value", "")).lower()
        found = [r for r in rows if term in json.dumps(r).lower()]
        draw = params.get("draw", 1)
        return _json({"draw": draw, "recordsTotal": len(rows), "recordsFiltered": len(found), "data": found})

    def _delete(category: str, body: Any) -> Response:
        items = body if isinstance(body, list) else []
        if category == "mailq":
            qids = [str(i) for i in items if _HEX.match(str(i))]
            sim.queue_action("delete", qids)
            log = ["process_mailq_output", "delete", {"qid": items}]
            return _json([_envelope("success", log, "queue_command_success")], pretty=False)
        if category == "qitem":
            log = ["quarantine", "delete", {"id": items}]
            out = []
            with state.lock:
                for item in items:
                    ident = str(item)
                    if ident.isdigit() and state.quarantine.pop(int(ident), None) is not None:
                        out.append(_envelope("success", log, ["item_deleted", ident]))
                    else:
                        out.append(_envelope("danger", log, "access_denied"))
            return _json(out, pretty=False)
        return _route_not_found()

    return app
