"""Cache keys: one per distinct result, the same in every process.

A derived key hashes two things: the statement's structure (SQLAlchemy's
own structural cache key, which already covers entities, columns, joins,
criteria and every loader option) and every value bound into it. The
structure part is memoized per structure, so a key for a query built fresh
each time costs one hash of its values, not a walk of its SQL.

Keys and namespaces handed to a backend contain only ``[A-Za-z0-9_.:-]``
and are at most ``MAX_NAME_LENGTH`` characters: anything else is replaced
by a digest, so memcached's 250-byte limit and the file backend's path
rules are never hit.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import hashlib
import os
import re
import types
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Mapper, MapperProperty
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.schema import Column, Table

from .exc import UncacheableQueryError
from .internals import _sa_internals

MAX_NAME_LENGTH = 100
_SAFE_NAME = re.compile(r"[A-Za-z0-9_.:-]+", re.ASCII)
# Markers that never occur in a name kept as-is, so a digest can never
# collide with a user's own key.
_DIGEST_PREFIX = "~"
_DERIVED_PREFIX = "q~"
_STRUCTURE_CACHE_SIZE = 5000
_SAFE_NAMES_SIZE = 5000
_safe_names: dict[str, str] = {}


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def safe_name(value: object, what: str) -> str:
    """Return ``value`` as a key or namespace every Beaker backend accepts.

    Short names made of safe characters are kept, so they stay readable
    in the backend; any other string becomes a digest of itself.
    """
    if type(value) is str:
        # every hit names its namespace, and an explicit key, again
        found = _safe_names.get(value)
        if found is not None:
            return found
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}: {value!r}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) <= MAX_NAME_LENGTH and _SAFE_NAME.fullmatch(value):
        name = value
    else:
        name = _DIGEST_PREFIX + _digest(value.encode("utf-8", "surrogatepass"))
    if type(value) is str and len(value) <= MAX_NAME_LENGTH:
        if len(_safe_names) >= _SAFE_NAMES_SIZE:
            _safe_names.clear()
        _safe_names[value] = name
    return name


def backend_key(key: str) -> bytes:
    """``key`` as Beaker's ``Cache`` front-end hands it to a namespace.

    The same form keeps the Beaker namespace's own key layout, so that
    Beaker's ``remove_value(key)`` and its creation locks name the same key.
    """
    return key.encode("ascii", "backslashreplace")


def _qualified(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{obj.__qualname__}"


def _stable_repr(value: Any, what: str) -> str:
    text = repr(value)
    if " at 0x" in text:
        raise UncacheableQueryError(
            f"cannot derive a cache key from {what} {text} of type "
            f"{_qualified(type(value))}: its repr() is not stable across "
            "processes; give the query an explicit cache_key"
        )
    return f"{_qualified(type(value))}({text})"


_EXACT_REPR = (
    decimal.Decimal,
    datetime.date,
    datetime.datetime,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)


def _render_sequence(value: Any, out: list[str]) -> None:
    kind = type(value)
    items = sorted(value, key=repr) if kind in (set, frozenset) else value
    out.append(f"{kind.__name__[0]}{len(items)}[")
    for item in items:
        _value_token(item, out)
    out.append("]")


def _render_other(value: Any, out: list[str]) -> None:
    if isinstance(value, enum.Enum):
        out.append(f"e{_qualified(type(value))}.{value.name}")
    elif isinstance(value, _EXACT_REPR):
        out.append(f"{_qualified(type(value))}({value!r})")
    else:
        out.append(_stable_repr(value, "bound value"))


# One renderer per exact type: bound values are rendered on every hit, so
# the common types take one dictionary lookup, not a chain of tests.
_RENDERERS: dict[type, Any] = {
    str: lambda v, out: out.append(f"s{len(v)}:{v}"),
    int: lambda v, out: out.append(f"i{v}"),
    bool: lambda v, out: out.append("T" if v else "F"),
    float: lambda v, out: out.append(f"f{v!r}"),
    bytes: lambda v, out: out.append(f"y{len(v)}:{v.hex()}"),
    type(None): lambda v, out: out.append("N"),
    list: _render_sequence,
    tuple: _render_sequence,
    set: _render_sequence,
    frozenset: _render_sequence,
}


def _value_token(value: Any, out: list[str]) -> None:
    """Append an unambiguous, type-tagged rendering of a bound value."""
    _RENDERERS.get(type(value), _render_other)(value, out)


def _bound_token(value: Any, out: list[str]) -> None:
    # _value_token, with the two commonest types inlined
    kind = type(value)
    if kind is str:
        out.append(f"s{len(value)}:{value}")
    elif kind is int:
        out.append(f"i{value}")
    else:
        _RENDERERS.get(kind, _render_other)(value, out)


def _render(value: Any) -> str:
    out: list[str] = []
    _value_token(value, out)
    return "".join(out)


_DISCRIMINATOR_TOKENS = {flags: _render(flags) for flags in [(), (False,), (True,)]}


def _is_node(node: tuple[Any, ...]) -> bool:
    """``(index, class, ...)``: an element SQLAlchemy numbered in its anon map.

    The index is an int in SQLAlchemy 2.1 and a string of digits in 2.0.
    """
    if len(node) < 2 or not isinstance(node[1], type):
        return False
    index = node[0]
    return type(index) is int or (type(index) is str and index.isdigit())


def _structure_token(node: Any, refs: dict[int, str]) -> str:
    """Render a node of SQLAlchemy's structural key without ids or addresses.

    SQLAlchemy numbers elements and renders a repeated *object* as a
    back-reference ``(index, class)``. Equal elements that are distinct
    objects (an unpickled loader option, say) are rendered in full
    instead, so the numbering is dropped and back-references expanded:
    the rendering depends on values only.
    """
    kind = type(node)
    if kind is tuple:
        if _is_node(node):
            if len(node) == 2 and node[0] in refs:
                return refs[node[0]]
            rendered = "(" + "".join(_structure_token(item, refs) for item in node[1:]) + ")"
            refs[node[0]] = rendered
            return rendered
        return "(" + "".join(_structure_token(item, refs) for item in node) + ")"
    if kind is str:
        return f"s{len(node)}:{node}"
    if node is None or kind in (bool, int, float):
        return f"{kind.__name__}:{node!r}"
    if isinstance(node, type) or (callable(node) and hasattr(node, "__qualname__")):
        return f"c:{_qualified(node)}"
    if isinstance(node, Mapper):
        return f"m:{_qualified(node.class_)}"
    if isinstance(node, MapperProperty):
        # lazy-load criteria name the relationship itself
        return f"p:{_qualified(node.parent.class_)}.{node.key}"
    if isinstance(node, types.CodeType):
        # lambda statements (lazy loads) are keyed on their code; its file
        # name without the directory is the same in every installation
        name = os.path.basename(node.co_filename)
        return f"code:{name}:{node.co_qualname}:{node.co_firstlineno}"
    if isinstance(node, Table):
        return f"t:{node.fullname}"
    if isinstance(node, Column) and isinstance(node.table, Table):
        return f"col:{node.table.fullname}.{node.name}"
    if isinstance(node, enum.Enum):
        return f"e:{_qualified(kind)}.{node.name}"
    if isinstance(node, ClauseElement):
        sub = _sa_internals.statement_cache_key(node)
        if sub is None:
            raise UncacheableQueryError(
                f"cannot derive a cache key from {node!r}; give the query an explicit cache_key"
            )
        return _structure_token(sub.key, {})
    return _stable_repr(node, "statement element")


_structure_digests: dict[Any, bytes] = {}


def _structure_digest(structure: Any) -> bytes:
    found = _structure_digests.get(structure)
    if found is not None:
        return found
    rendered = _structure_token(structure, {})
    digest = hashlib.blake2b(rendered.encode("utf-8", "surrogatepass"), digest_size=20).digest()
    if len(_structure_digests) >= _STRUCTURE_CACHE_SIZE:
        _structure_digests.clear()
    _structure_digests[structure] = digest
    return digest


def _anonymous_stem(name: str) -> str:
    """``'%(140234 name)s'`` -> ``'name'``: anonymous names carry an id."""
    if name.startswith("%(") and name.endswith(")s"):
        return name[2:-2].split(" ", 1)[-1]
    return name


def derive_key(
    statement: ClauseElement | Executable,
    parameters: Mapping[str, Any] | None = None,
    *discriminators: Any,
) -> str:
    """The cache key of ``statement`` executed with ``parameters``.

    ``discriminators`` are extra plain values that change the shape of
    the result without changing the statement (for example the legacy
    ``Query.tuples()`` flag).
    """
    cache_key = _sa_internals.statement_cache_key(statement)
    if cache_key is None:
        raise UncacheableQueryError(
            "SQLAlchemy cannot build a structural cache key for this statement "
            "(it contains an element that disables statement caching); give "
            "the query an explicit cache_key"
        )
    binds = cache_key.bindparams
    # Rendered as the list [value, ..., extra, discriminators] would be.
    out = [f"l{len(binds) + 2}["]
    if parameters:
        params = dict(parameters)
        for bind in binds:
            key = bind.key
            _bound_token(params.pop(key) if key in params else bind.effective_value, out)
        # Parameters no bound parameter of the structure claims (text()
        # clauses, lazy-load criteria): sorted by their id-free name.
        extra = sorted(((_anonymous_stem(k), v) for k, v in params.items()), key=lambda kv: kv[0])
        _value_token(extra, out)
    else:
        for bind in binds:
            _bound_token(bind.effective_value, out)
        out.append("l0[]")
    out.append(_DISCRIMINATOR_TOKENS.get(discriminators) or _render(discriminators))
    out.append("]")
    digest = hashlib.blake2b(
        _structure_digest(cache_key.key) + "".join(out).encode("utf-8", "surrogatepass"),
        digest_size=20,
    )
    return _DERIVED_PREFIX + digest.hexdigest()


def derive_execution_key(
    statement: ClauseElement | Executable, parameters: Any, load_options: Any = None
) -> str:
    """The derived key of an ORM execution: its statement, its parameters
    (one mapping: a SELECT is never an executemany), and whether the legacy
    ``Query.tuples()`` shaped its rows."""
    tuples = bool(load_options and _sa_internals.load_option(load_options, "only_return_tuples"))
    return derive_key(statement, parameters, tuples)
