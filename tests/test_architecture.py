"""The layout holds: import-linter's contracts (pyproject.toml) pass, a forbidden import breaks them,
and no module or function grows past the size a reader can take in at once."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("exporter", "datasource", "dashboards")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Kept longer on purpose, with the reason.
LONG_FUNCTIONS = {
    # one regular-expression dispatch over every "queued" line shape Postfix writes; split, the shapes'
    # order (which decides the match) would be spread over several functions
    ("exporter/parsers/postfix.py", "_parse_queued"),
}


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_import_contracts_hold_on_this_tree() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # an adapter importing the other adapter
        ("exporter/web/logs.py", "import datasource.infinity", "do not import each other"),
        # the store reaching up into a read model (store/domains -> live_views once did)
        ("exporter/store/audit.py", "import exporter.readmodels.health", "Layers"),
        # the web process importing the worker, and APScheduler with it (web/settings -> jobs once did)
        ("exporter/web/api.py", "import exporter.worker.supervisor", "nor does the web import the worker"),
        ("exporter/readmodels/health.py", "import apscheduler.schedulers.background", "never loads the scheduler"),
        # a read model calling mailcow itself instead of through the live reads
        ("exporter/readmodels/mailcow_state.py", "import exporter.mailcow.client", "mailcow's HTTP client"),
        # a parser touching the database
        ("exporter/parsers/words.py", "import psycopg", "Parsers are pure"),
        # the product depending on its own test stand-in
        ("exporter/services/ingest.py", "import exporter.simulator.state", "only the command line starts it"),
        # two modules of one package importing each other
        ("exporter/store/counters.py", "import exporter.store.audit", "No cycles"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "*.json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint_imports(tmp_path).returncode == 0  # the copy itself is sound
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{line}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in " ".join(broken.split()), result.stdout  # import-linter wraps long names


def _sources() -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if "simulator" not in path.relative_to(ROOT).parts
    )


def test_no_module_is_longer_than_a_reader_takes_in() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in _sources()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: split them by job"


def test_no_function_is_longer_than_a_screen_or_two() -> None:
    long = {}
    for path in _sources():
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES and (name, node.name) not in LONG_FUNCTIONS:
                    long[f"{name}::{node.name}"] = length
    assert long == {}, f"functions over {MAX_FUNCTION_LINES} lines"


def test_every_module_says_what_it_is_for() -> None:
    missing = [str(p.relative_to(ROOT)) for p in _sources() if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert missing == []
