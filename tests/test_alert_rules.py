"""The shipped alert rules are valid and behave as their unit tests say (real promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

PROMETHEUS = Path(__file__).parent.parent / "provisioning" / "prometheus"


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_rules_pass_promtool_check():
    result = promtool("check", "rules", "rules/mailcow-alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 18 rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say():
    result = promtool("test", "rules", "mailcow-alerts.test.yml", cwd=PROMETHEUS / "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case():
    rules = yaml.safe_load((PROMETHEUS / "rules" / "mailcow-alerts.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "tests" / "mailcow-alerts.test.yml").read_text())["tests"]
    firing, quiet = set(), set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert firing == alerts and quiet == alerts


def test_the_scrape_config_example_is_valid():
    result = promtool("check", "config", "--syntax-only", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
