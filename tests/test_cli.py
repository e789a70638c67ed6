"""`mailcow-grafana --help` lists every command with a line saying what it does."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from exporter.cli import COMMANDS


def test_help_lists_every_command_with_a_description():
    result = subprocess.run(
        [sys.executable, "-m", "exporter.cli", "--help"],
        env={**os.environ, "COLUMNS": "120"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    choices = re.search(r"\{([a-z,-]+)\}", result.stdout)
    assert choices is not None, result.stdout
    described = dict(re.findall(r"^ {4}([a-z-]+) +(\S.*)$", result.stdout, re.MULTILINE))
    assert sorted(choices.group(1).split(",")) == sorted(COMMANDS) == sorted(described), result.stdout
