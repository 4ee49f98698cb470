"""The statistics as Prometheus metrics, for applications that already expose some.

``pip install caching_query[prometheus]``, then once at start-up::

    from caching_query.operations import prometheus
    prometheus.register()            # into prometheus_client's default registry

Every counter of ``caching_query.statistics()`` becomes a Prometheus
counter labelled by ``region`` and ``namespace`` (``caching_query_hits_total``,
``caching_query_bytes_read_total``, ...), and bypasses one counter with a
``reason`` label. The values are read when Prometheus scrapes, so counting
costs a hit nothing more; they count from process start, unaffected by
``reset_statistics()``.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector, CollectorRegistry

from . import stats

_HELP = {
    "hits": "Executions served from the cache, without SQL",
    "misses": "Executions that ran their query to store its result",
    "stores": "Entries written to the backend",
    "invalidations": "Entries removed by invalidate()",
    "auto_invalidations": "Entries found stale because a table they read was written",
    "clears": "Namespaces cleared",
    "refused": "Values read but not trusted: unsigned, foreign or malformed",
    "backend_errors": "Failed backend operations",
    "bytes_read": "Bytes of entries read from the backend",
    "bytes_written": "Bytes of entries written to the backend",
    "stale_served": "Expired entries served while another process regenerated them",
}


class StatisticsCollector(Collector):
    """Reads ``caching_query``'s counters at each scrape."""

    def collect(self) -> Iterator[Metric]:
        snapshot = stats.lifetime_statistics()
        for name in stats.COUNTERS:
            family = CounterMetricFamily(
                f"caching_query_{name}", _HELP[name], labels=["region", "namespace"]
            )
            for (region, namespace), counts in snapshot.items():
                family.add_metric([region, namespace], getattr(counts, name))
            yield family
        bypassed = CounterMetricFamily(
            "caching_query_bypassed",
            "Executions that did not use the cache, by reason",
            labels=["region", "namespace", "reason"],
        )
        for (region, namespace), counts in snapshot.items():
            for reason, value in counts.bypassed.items():
                bypassed.add_metric([region, namespace, reason], value)
        yield bypassed


def register(registry: CollectorRegistry = REGISTRY) -> StatisticsCollector:
    """Add the library's counters to ``registry``; returns the collector (to unregister)."""
    collector = StatisticsCollector()
    registry.register(collector)
    return collector
