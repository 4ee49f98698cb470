"""Loading region configuration the way a user already has it: an .ini file or a Python object."""

from __future__ import annotations

import configparser
import importlib
import os
import sys
from pathlib import Path
from typing import Any

import beaker.util
from beaker.cache import CacheManager

from ..exc import CachingQueryError

__all__ = ["ConfigError", "is_file_source", "load", "load_ini", "load_object", "select_regions"]

FILE_SUFFIXES = (".ini", ".cfg")
_PREFIXES = ("cache.", "beaker.cache.")


class ConfigError(CachingQueryError):
    """The configuration could not be loaded, or does not define what was asked for."""


def is_file_source(source: str) -> bool:
    """Whether ``source`` names a configuration file rather than ``module:attribute``."""
    return source.lower().endswith(FILE_SUFFIXES)


def load(source: str, section: str | None = None) -> CacheManager:
    """The ``CacheManager`` of ``source``: a ``.ini``/``.cfg`` path or ``module:attribute``."""
    if is_file_source(source):
        return load_ini(source, section)
    if section is not None:
        raise ConfigError(f"--section applies to .ini files, not to {source!r}")
    if ":" not in source:
        raise ConfigError(
            f"{source!r} is neither a configuration file (a path ending in "
            f"{' or '.join(FILE_SUFFIXES)}) nor a module:attribute naming a CacheManager"
        )
    return load_object(source)


def load_ini(path: str | os.PathLike[str], section: str | None = None) -> CacheManager:
    """A ``CacheManager`` from the ``cache.*`` settings of one section of a Beaker/Pyramid file.

    ``section`` defaults to the first section holding ``cache.`` (or
    ``beaker.cache.``) settings; ``%(here)s`` is the file's directory, as
    in PasteDeploy files.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"configuration file {str(file)!r} does not exist")
    here = str(file.resolve().parent)
    parser = configparser.ConfigParser(defaults={"here": here, "__file__": str(file.resolve())})
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # region names keep their case
    try:
        with open(file, encoding="utf-8") as stream:
            parser.read_file(stream)
    except (configparser.Error, UnicodeDecodeError, OSError) as error:
        raise ConfigError(f"cannot read {str(file)!r}: {error}") from error
    name = section if section is not None else _first_cache_section(parser)
    if name is None:
        raise ConfigError(
            f"{str(file)!r} has no cache. settings in any section "
            f"(expected e.g. [app:main] with cache.regions = default)"
        )
    if not parser.has_section(name):
        sections = ", ".join(repr(s) for s in parser.sections()) or "none"
        raise ConfigError(f"{str(file)!r} has no section [{name}]; its sections: {sections}")
    try:
        settings = {key: parser.get(name, key) for key in parser.options(name)}
    except configparser.Error as error:
        raise ConfigError(f"cannot read [{name}] of {str(file)!r}: {error}") from error
    where = f"[{name}] of {str(file)!r}"
    if not any(key.startswith(_PREFIXES) for key in settings):
        raise ConfigError(f"{where} has no cache. settings")
    try:
        options = beaker.util.parse_cache_config_options(settings)
    except Exception as error:  # Beaker raises a bare Exception for a bad value
        raise ConfigError(f"bad cache settings in {where}: {error}") from error
    if not options.get("cache_regions"):
        raise ConfigError(
            f"{where} configures no cache region (set cache.regions = name, other_name)"
        )
    return CacheManager(**options)


def _first_cache_section(parser: configparser.ConfigParser) -> str | None:
    for name in parser.sections():
        if any(key.startswith(_PREFIXES) for key in parser.options(name)):
            return name
    return None


def load_object(spec: str) -> CacheManager:
    """The ``CacheManager`` that ``module:attribute`` names, or that calling it returns.

    The module is imported with the current directory on ``sys.path``.
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{spec!r} must be module:attribute, e.g. myapp.cache:manager")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name == module_name or module_name.startswith(f"{error.name}."):
            raise ConfigError(
                f"cannot import module {module_name!r}: no such module "
                f"(looked in the current directory {cwd!r} and sys.path)"
            ) from error
        raise ConfigError(f"importing module {module_name!r} failed: {error}") from error
    except Exception as error:
        raise ConfigError(
            f"importing module {module_name!r} failed: {type(error).__name__}: {error}"
        ) from error
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(found, CacheManager) and callable(found):
        try:
            found = found()
        except Exception as error:
            raise ConfigError(f"calling {spec} failed: {type(error).__name__}: {error}") from error
    if not isinstance(found, CacheManager):
        raise ConfigError(
            f"{spec} is {type(found).__name__!s} {found!r:.80}, not a beaker CacheManager "
            f"(nor a callable returning one)"
        )
    if not found.regions:
        raise ConfigError(f"the CacheManager {spec} configures no cache region")
    return found


def select_regions(manager: CacheManager, names: list[str] | None) -> list[str]:
    """``names`` (every configured region when None or empty), each checked to be configured."""
    configured = list(manager.regions)
    if not names:
        return configured
    unknown = [name for name in names if name not in manager.regions]
    if unknown:
        listed = ", ".join(repr(name) for name in configured)
        raise ConfigError(
            f"unknown cache region {', '.join(repr(n) for n in unknown)}; "
            f"configured regions: {listed}"
        )
    return list(dict.fromkeys(names))
