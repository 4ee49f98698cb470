"""Benchmarks for caching_query: run ``python -m benchmarks`` from the repo root.

They answer whether caching a query pays off (a hit against the same query
without the cache, for 1, 100 and 1000 rows, per Beaker backend), what the
library costs when it is not used, how fast keys are derived, how hits
scale across threads and how big a stored entry is. See ``__main__``.
"""
