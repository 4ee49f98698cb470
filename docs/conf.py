"""Sphinx configuration of the caching_query documentation site.

The prose lives in ``README.rst`` (the pages include its sections between
the ``.. docs-begin: NAME`` / ``.. docs-end: NAME`` comments); the API
reference comes from the package's docstrings.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import caching_query  # noqa: E402

project = "caching_query"
author = "caching_query developers"
copyright = "caching_query developers"
release = caching_query.__version__
version = release

extensions = ["sphinx.ext.autodoc"]

root_doc = "index"
exclude_patterns = ["_build"]
# README's literal blocks hold Python, shell sessions and .ini files alike:
# "default" highlights what lexes as Python and leaves the rest plain.
highlight_language = "default"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options: dict[str, object] = {}

html_theme = "alabaster"
html_title = f"caching_query {release}"
html_static_path: list[str] = []
autodoc_inherit_docstrings = False  # SQLAlchemy's own (Query.options) refer to its labels
