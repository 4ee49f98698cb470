"""Which sessions invalidate automatically, and what they leave out.

Set by ``auto_invalidate()`` / ``cache_all()`` on a session factory (the
same targets ``install()`` takes) and read by the hook on every cached
execution; a session whose factory was never switched on keeps explicit
invalidation only.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ..options import FromCache


@dataclass(frozen=True)
class Settings:
    """Automatic invalidation for one session factory."""

    excluded_regions: frozenset[str] = frozenset()
    # "cache every query": the option every uncached ORM SELECT gets
    cache_all: FromCache | None = None

    def covers(self, option: Any) -> bool:
        """True when entries of ``option`` are checked against table versions."""
        return (
            getattr(option, "auto_invalidate", None) is not False
            and option.region not in self.excluded_regions
        )


_settings: weakref.WeakKeyDictionary[Any, Settings] = weakref.WeakKeyDictionary()


def switch_on(target: Any, settings: Settings) -> None:
    _settings[target] = settings


def settings_for(session: Session) -> Settings | None:
    """The settings of ``session``'s factory, or None: explicit invalidation only."""
    if not _settings:
        return None
    return _settings.get(session) or _settings.get(type(session))


def switch_off(target: Any) -> None:
    _settings.pop(target, None)
