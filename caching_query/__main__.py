"""``python -m caching_query``: the operator's command line."""

from .operations.cli import main

raise SystemExit(main())
