"""The documentation's code runs, and says truly where SQL is sent.

Every ``.. code-block:: python`` of README.rst and of each page in docs/ is
run, the blocks of one file in order in one namespace, against the SQLite
databases they create. A simple statement whose line carries ``# SQL``
must send at least one statement to a database, one carrying ``# no SQL``
none. Plain ``::`` blocks are fragments (shell commands, settings, lines
of a larger program) and are not run.

Also checked: every section of README.rst lies between a pair of
``.. docs-begin: NAME`` / ``.. docs-end: NAME`` comments, and every such
pair is included by a page of the documentation site.
"""

from __future__ import annotations

import ast
import re
import sys
import textwrap
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import beaker.cache
import pytest
from beaker.container import MemoryNamespaceManager
from sqlalchemy import Engine, event

from caching_query import health
from caching_query.invalidation import publish

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"
DOCS = ROOT / "docs"
SOURCES = [README, *sorted(DOCS.glob("*.rst"))]

_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: python\s*$")
_MARK = re.compile(r"#\s*(no SQL|SQL)\b")


@dataclass
class Block:
    path: Path
    first_line: int  # 1-based line of the block's first code line in its file
    code: str


def python_blocks(path: Path) -> list[Block]:
    """The ``.. code-block:: python`` bodies of an RST file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        match = _DIRECTIVE.match(lines[index])
        index += 1
        if match is None:
            continue
        indent = len(match.group(1))
        # directive options (":caption: ...") and the blank line after them
        while index < len(lines) and lines[index].strip().startswith(":"):
            index += 1
        body: list[str] = []
        start = None
        while index < len(lines):
            line = lines[index]
            if line.strip() and len(line) - len(line.lstrip()) <= indent:
                break
            if start is None and line.strip():
                start = index
            if start is not None:
                body.append(line)
            index += 1
        if start is not None:
            code = textwrap.dedent("\n".join(body)).rstrip() + "\n"
            blocks.append(Block(path, start + 1, code))
    return blocks


class StatementTrace:
    """Which lines of the running example sent each statement any engine sent.

    A statement is counted against the current line of every frame of the
    example on the stack: the line calling a function the example defined
    and the line inside it alike.
    """

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.sent: dict[int, int] = {}

    def _statement(self, *args: Any) -> None:
        frame: FrameType | None = sys._getframe()
        while frame is not None:
            if frame.f_code.co_filename == self.filename:
                self.sent[frame.f_lineno] = self.sent.get(frame.f_lineno, 0) + 1
            frame = frame.f_back

    def __enter__(self) -> StatementTrace:
        event.listen(Engine, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *exc: Any) -> None:
        event.remove(Engine, "before_cursor_execute", self._statement)


def _marked_statements(tree: ast.Module, lines: list[str]) -> list[tuple[str, int, int]]:
    """``(mark, first line, last line)`` of each simple statement carrying a mark."""
    marked = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.stmt) or hasattr(node, "body"):
            continue
        end = node.end_lineno or node.lineno
        for number in range(node.lineno, end + 1):
            found = _MARK.search(lines[number - 1])
            if found:
                marked.append((found.group(1), node.lineno, end))
                break
    return marked


@pytest.fixture
def clean_regions() -> Iterator[None]:
    """Beaker's global regions and memory namespaces as the examples find and leave them."""
    saved = dict(beaker.cache.cache_regions)
    beaker.cache.cache_regions.clear()
    for dictionary in list(MemoryNamespaceManager.namespaces.dict.values()):
        dictionary.clear()
    health.reset()
    yield
    publish.forget()
    health.reset()
    beaker.cache.cache_regions.clear()
    beaker.cache.cache_regions.update(saved)


def _documents_with_code() -> list[Path]:
    return [path for path in SOURCES if python_blocks(path)]


def test_the_readme_and_the_concepts_page_have_examples() -> None:
    names = {path.name for path in _documents_with_code()}
    assert {"README.rst", "concepts.rst"} <= names


@pytest.mark.parametrize("path", _documents_with_code(), ids=lambda path: path.name)
def test_examples_run_and_send_sql_where_they_say(path: Path, clean_regions: None) -> None:
    # a module of its own, as a program's would be (SQLAlchemy looks up
    # annotations in the module a class is defined in)
    module = types.ModuleType(f"docs_example_{path.stem}")
    sys.modules[module.__name__] = module
    try:
        checked = _run_blocks(path, module.__dict__)
    finally:
        del sys.modules[module.__name__]
    assert checked > 0, f"{path.name}: no line marked '# SQL' or '# no SQL'"


def _run_blocks(path: Path, namespace: dict[str, Any]) -> int:
    """Run ``path``'s blocks in ``namespace``; the number of marked statements checked."""
    checked = 0
    for block in python_blocks(path):
        filename = f"{path.relative_to(ROOT)}:{block.first_line}"
        # pad so that line numbers (and tracebacks) are the file's own
        source = "\n" * (block.first_line - 1) + block.code
        tree = ast.parse(source, filename)
        marked = _marked_statements(tree, source.splitlines())
        with StatementTrace(filename) as trace:
            exec(compile(tree, filename, "exec", dont_inherit=True), namespace)
        for mark, first, last in marked:
            sent = sum(trace.sent.get(line, 0) for line in range(first, last + 1))
            where = f"{path.name} line {first}: {source.splitlines()[first - 1].strip()!r}"
            if mark == "SQL":
                assert sent > 0, f"{where} says SQL, sent none"
            else:
                assert sent == 0, f"{where} says no SQL, sent {sent} statements"
            checked += 1
    return checked


_SECTION = re.compile(r"^(?P<title>\S.*)\n(?P<rule>-{3,})$", re.MULTILINE)
_MARKER = re.compile(r"^\.\. docs-(?P<edge>begin|end): (?P<name>[a-z0-9-]+)$", re.MULTILINE)


def test_every_readme_section_is_in_the_documentation_site() -> None:
    text = README.read_text(encoding="utf-8")
    spans: dict[str, list[int]] = {}
    for marker in _MARKER.finditer(text):
        spans.setdefault(marker.group("name"), []).append(marker.start())
    for name, positions in spans.items():
        assert len(positions) == 2 and positions[0] < positions[1], (
            f"README.rst: 'docs-begin: {name}' and 'docs-end: {name}' must appear once each, "
            "in that order"
        )
    uncovered = [
        match.group("title")
        for match in _SECTION.finditer(text)
        if len(match.group("rule")) == len(match.group("title"))
        and not any(begin < match.start() < end for begin, end in spans.values())
    ]
    assert not uncovered, (
        f"README.rst sections outside any docs-begin/docs-end pair: {uncovered}; "
        "wrap each in a pair and include it from a page in docs/"
    )
    pages = "\n".join(page.read_text(encoding="utf-8") for page in DOCS.glob("*.rst"))
    included = set(re.findall(r":start-after: docs-begin: ([a-z0-9-]+)\n", pages))
    assert set(spans) <= included, f"README sections no page includes: {set(spans) - included}"
    # an include finds the first occurrence of its text: "docs-begin: cli" must not
    # also be the start of "docs-begin: clients"
    for name in included:
        for edge in ("begin", "end"):
            assert text.count(f"docs-{edge}: {name}") == 1, f"'docs-{edge}: {name}' is ambiguous"
