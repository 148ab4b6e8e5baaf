"""Settings: dataclasses with their defaults in one place, overridden by a TOML file, then flags.

A TOML file has one table per stage, named like the dataclass's ``section``::

    [wmf]
    factors = 64
    alpha = 2.0

A stage with parts has a sub-table per part, named with a dot (``[ingest.events]``: section
``"ingest.events"``); the stage's own table then holds that part's table as a key, which its own
settings skip (:data:`SUBSECTIONS`).

The effective settings are written next to every artefact they produced (``asdict``).
"""

from __future__ import annotations

import dataclasses
import importlib.machinery
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_WORKDIR = "pmrs-data"

#: WMF training engines (``pmrs train-wmf --engine``): ``implicit`` in this process, ``spark``
#: Spark MLlib's ALS (pmrs.collaborative.spark). Here so the command line lists them without importing either.
WMF_ENGINES = ("implicit", "spark")


def resolve_workdir(workdir: str | os.PathLike | None) -> Path:
    """The work directory: the flag, else ``$PMRS_HOME``, else ``./pmrs-data``. Logs a warning
    when its name would hide the library (:func:`shadowed_package`)."""
    path = Path(workdir) if workdir else Path(os.environ.get("PMRS_HOME") or DEFAULT_WORKDIR)
    hidden = shadowed_package(path)
    if hidden:
        logging.getLogger(__name__).warning(
            "the work directory %s would hide the installed %s package from Python started in %s "
            "(`python -c`, `python -m`, a notebook): a folder named like a package in the current "
            "directory wins over a package installed by setuptools' default editable mode. Rename the "
            "work directory, or reinstall PMRS with `make install` (a strict editable install).",
            path, hidden, path.resolve().parent)
    return path


def load_toml(path: str | os.PathLike | None) -> dict[str, Any]:
    """Read a TOML config file; ``None`` gives an empty config."""
    if path is None:
        return {}
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {p} is not valid TOML: {exc}") from None


#: Sub-tables a section may hold (``[ingest.events]``), read by settings of their own.
SUBSECTIONS: dict[str, tuple[str, ...]] = {"ingest": ("events",)}


def _table(toml: dict[str, Any] | None, section: str) -> dict[str, Any]:
    """``toml[section]``, following dots (``"ingest.events"``); ``{}`` when absent."""
    table: Any = toml or {}
    for part in section.split("."):
        table = table.get(part, {})
        if not isinstance(table, dict):
            raise ValueError(f"config section [{section}] must be a table")
    return table


def build(cls: type[T], section: str, toml: dict[str, Any] | None = None,
          overrides: dict[str, Any] | None = None) -> T:
    """Instantiate settings ``cls`` from defaults, then ``toml[section]``, then non-None overrides.

    Unknown keys are an error (a typo in a config file must not be silently ignored).
    """
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    table = dict(_table(toml, section))
    for sub in SUBSECTIONS.get(section, ()):
        if isinstance(table.get(sub), dict):
            del table[sub]
    unknown = set(table) - names
    if unknown:
        raise ValueError(f"unknown setting(s) in [{section}]: {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(sorted(names))}")
    values.update(table)
    for key, value in (overrides or {}).items():
        if value is not None and key in names:
            values[key] = value
    return cls(**values)  # type: ignore[call-arg]


def given(cls: type, section: str, toml: dict[str, Any] | None = None,
          overrides: dict[str, Any] | None = None) -> frozenset[str]:
    """Names of the settings of ``cls`` that ``toml[section]`` or a non-None override sets: the
    ones a user fixed (settings chosen from the data leave them alone)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    table = _table(toml, section)
    from_flags = {k for k, v in (overrides or {}).items() if v is not None and k in names}
    return frozenset((set(table) & names) | from_flags)


#: The top-level packages PMRS installs.
INSTALLED_PACKAGES = ("pmrs", "pmrs_server", "pmrs_clients", "pmrs_indexer")


def shadowed_package(folder: str | os.PathLike, path: list[str] | None = None) -> str | None:
    """The name of the PMRS package that Python started in ``folder``'s parent would import from
    ``folder`` instead of the installed one, or ``None``.

    Python puts the current directory first on ``sys.path`` (``python -c``, ``python -m``, the
    REPL), and a folder there without ``__init__.py`` becomes a namespace package unless a
    regular package of the same name is found on *any* entry of ``sys.path``. A normal install
    (a wheel in site-packages) and a strict editable install (a link tree on ``sys.path``) are
    such packages and win; setuptools' default editable install is not (a finder that is asked
    only after the path, too late), so there ``cd /data && python -c "import pmrs"`` with a work
    directory ``/data/pmrs`` imports the empty folder. ``path``: the path searched after the
    current directory (default: this process's ``sys.path`` after its first entry, which is the
    script's or the current directory)."""
    folder = Path(folder).absolute()
    name = folder.name
    if name not in INSTALLED_PACKAGES or (folder / "__init__.py").exists():
        return None
    spec = importlib.machinery.PathFinder.find_spec(name, sys.path[1:] if path is None else path)
    regular = spec is not None and spec.origin not in (None, "namespace")
    return None if regular else name

