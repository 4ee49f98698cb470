"""Run SQLAlchemy's own ORM tests with CachingQuery as every session's query class.

    python parity/run.py [extra pytest arguments]

Downloads the source distribution of the installed SQLAlchemy (it holds
the test suite) into ``.parity/``, then runs the Query-centred test modules
with the ``caching_query_as_default`` plugin. Every one of them passes with
SQLAlchemy's own ``Query``; any failure is a difference in behaviour.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import sqlalchemy

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".parity"
MODULES = [
    "test/orm/test_query.py",
    "test/orm/test_froms.py",
    "test/orm/test_eager_relations.py",
    "test/orm/test_deprecations.py",
    "test/orm/test_bind.py",
    "test/orm/test_core_compilation.py",
    "test/ext/test_horizontal_shard.py",
]


def source_tree() -> Path:
    version = sqlalchemy.__version__
    tree = WORK / f"sqlalchemy-{version}"
    if (tree / "test").is_dir():
        return tree
    WORK.mkdir(exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-binary",
            ":all:",
            "--no-deps",
            f"sqlalchemy=={version}",
            "-d",
            str(WORK),
        ],
        check=True,
    )
    with tarfile.open(WORK / f"sqlalchemy-{version}.tar.gz") as archive:
        archive.extractall(WORK, filter="data")
    return tree


def main(argv: list[str]) -> int:
    tree = source_tree()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parent),
        # use the installed SQLAlchemy, not the tree's lib/ (as tox does)
        "PYTHONNOUSERSITE": "1",
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "caching_query_as_default",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:xdist",
        "-q",
        "--maxfail=100000",
        "--dburi",
        "sqlite:///:memory:",
        *MODULES,
        *argv,
    ]
    return subprocess.run(command, cwd=tree, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
