"""Imported first by every bench script. Run as `python bench/X.py`, this folder would come first on
sys.path and bench/datasource.py would shadow the project's `datasource` package; the repository
root goes there instead (bench/load.py reuses the tests' load runner)."""

import sys
from pathlib import Path

HERE = Path(__file__).parent.resolve()
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
