"""Every private SQLAlchemy and Beaker name the library relies on, and nothing else.

``_sa_internals`` (SQLAlchemy's ORM execution), ``_sa_loading`` and
``_fast_load`` (SQLAlchemy's loader, fed stored rows), ``_beaker_internals``
(namespace records, one round trip), ``_beaker_clients`` (the memcached and
Redis client objects), ``_beaker_unpickling`` (where each backend unpickles).
``tests/test_sa_internals.py`` holds the canaries that fail loudly when
SQLAlchemy or Beaker change one of them.
"""
