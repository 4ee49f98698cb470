#!/usr/bin/env python3
"""The project's two entry points, needing nothing but python3.

    python3 tasks.py demo     # run examples/helloworld.py
    python3 tasks.py test     # run the whole test suite
    python3 tasks.py test20   # the suite on SQLAlchemy 2.0 (memory and file regions, hook path)
    python3 tasks.py parity   # SQLAlchemy's own ORM Query tests, run with CachingQuery
    python3 tasks.py docs       # build the documentation site, warnings as errors
    python3 tasks.py typecheck  # mypy --strict on the package and tests/typing_checks.py

Each creates a virtualenv beside this file on first use (``.venv``,
``.venv-sa20``, ``.venv-docs``, ``.venv-typecheck``) and installs the
package into it with the setup.cfg extras it needs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def _ensure_venv(name: str, *extra: str, extras: str = "test") -> Path:
    """``ROOT/name`` with the package, its ``extras`` and ``extra`` installed."""
    home = ROOT / name
    python = home / "bin" / "python"
    stamp = home / ".installed"
    if not python.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(home)
    setup_cfg = (ROOT / "setup.cfg").stat().st_mtime
    if stamp.exists() and stamp.stat().st_mtime >= setup_cfg:
        return python
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip", "setuptools", "wheel"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]", *extra], check=True)
    stamp.touch()
    return python


def _run(python: Path, *args: str, **env: str) -> int:
    return subprocess.run([str(python), *args], cwd=ROOT, env={**os.environ, **env}).returncode


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    if command == "demo":
        return _run(_ensure_venv(".venv"), "-m", "examples.helloworld", *argv[1:])
    if command == "test":
        return _run(_ensure_venv(".venv"), "-m", "pytest", *argv[1:])
    if command == "test20":
        python = _ensure_venv(".venv-sa20", "SQLAlchemy>=2.0,<2.1")
        # legacy queries through Session.execute and the hook: the other entrance
        return _run(
            python,
            "-m",
            "pytest",
            "-q",
            *argv[1:],
            CQ_BACKENDS="memory,file",
            CQ_LEGACY_PATH="hook",
        )
    if command == "parity":
        return _run(_ensure_venv(".venv"), "parity/run.py", *argv[1:])
    if command == "docs":
        python = _ensure_venv(".venv-docs", extras="docs,flask")
        html = ["-W", "--keep-going", "-b", "html", "docs", "docs/_build/html"]
        return _run(python, "-m", "sphinx", *html, *argv[1:])
    if command == "typecheck":
        # the optional clients too: the modules using them are checked against their types
        extras = "typecheck,redis,memcached,prometheus,flask"
        python = _ensure_venv(".venv-typecheck", extras=extras)
        checked = ["caching_query", "tests/typing_checks.py"]
        return _run(python, "-m", "mypy", "--strict", *checked, *argv[1:])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
