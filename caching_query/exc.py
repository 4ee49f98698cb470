"""Errors raised for bad input: each names what was wrong."""

from __future__ import annotations

from sqlalchemy.exc import InvalidRequestError


class CachingQueryError(InvalidRequestError):
    """Base class of this library's errors."""


class UnknownRegionError(CachingQueryError, KeyError):
    """A cache option names a region no configuration defines."""

    def __str__(self) -> str:
        return str(self.args[0])


class UncacheableQueryError(CachingQueryError):
    """No stable key can be derived for a query; it needs an explicit one."""


class CacheOptionError(CachingQueryError):
    """Cache options that contradict each other or the query."""
