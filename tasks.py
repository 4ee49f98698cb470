#!/usr/bin/env python3
"""The project's two entry points, needing nothing but python3.

    python3 tasks.py demo   # run examples/helloworld.py
    python3 tasks.py test   # run the whole test suite

Each creates ``.venv`` beside this file on first use and installs the
package with its test dependencies into it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def _ensure_venv() -> None:
    if not PYTHON.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    setup_cfg = (ROOT / "setup.cfg").stat().st_mtime
    if STAMP.exists() and STAMP.stat().st_mtime >= setup_cfg:
        return
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip", "setuptools", "wheel"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[test]"], check=True)
    STAMP.touch()


def _run(*args: str) -> int:
    return subprocess.run([str(PYTHON), *args], cwd=ROOT, env=os.environ.copy()).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    _ensure_venv()
    if argv[0] == "demo":
        return _run("-m", "examples.helloworld", *argv[1:])
    return _run("-m", "pytest", *argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
