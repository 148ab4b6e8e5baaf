"""Names and installs: the library imports no application, the packages pyproject.toml installs are
the ones in the tree (the applications under pmrs_server, pmrs_clients and pmrs_indexer), and a
work directory named like the library does not hide it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from pmrs.config import shadowed_package

ROOT = Path(__file__).resolve().parents[1]
APPLICATIONS = {"pmrs_server": "server", "pmrs_clients": "clients", "pmrs_indexer": "indexer"}
def _imports(path: Path, package: str) -> list[str]:
    """The absolute names of the modules ``path`` (a module of ``package``) imports."""
    parts = package.split(".")
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:len(parts) - (node.level - 1)]
                out += [".".join(base + [node.module])] if node.module else \
                    [".".join(base + [a.name]) for a in node.names]
            else:
                out.append(node.module)
    return out


def _modules():
    """(path, its package's dotted name, its top-level part of pmrs) of every module of pmrs."""
    for path in sorted((ROOT / "pmrs").rglob("*.py")):
        rel = path.relative_to(ROOT).with_suffix("")
        package = ".".join(rel.parts[:-1])
        yield path, package, rel.parts[1] if len(rel.parts) > 2 or rel.parts[-1] != "__init__" else ""


def test_the_library_imports_no_application():
    bad = {f"{path.relative_to(ROOT)}: {name}" for path, package, _ in _modules()
           for name in _imports(path, package)
           if name.split(".")[0] in {*APPLICATIONS, *APPLICATIONS.values(), "bench", "tests"}}
    assert not bad, sorted(bad)


def _module_graph() -> dict[str, set[str]]:
    """Every module of pmrs -> the modules of pmrs it imports (anywhere in it: a function's
    import is a dependency too; ``from pkg import name`` counts ``pkg`` and, when it is a
    module, ``pkg.name``)."""
    names = {}
    for path, package, _ in _modules():
        rel = path.relative_to(ROOT).with_suffix("")
        names[".".join(rel.parts[:-1] if rel.parts[-1] == "__init__" else rel.parts)] = (path, package)
    graph = {}
    for name, (path, package) in names.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = _imports_of(node, package)
                found |= {base, *(f"{base}.{a.name}" for a in node.names)}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        # (a module's own packages are imported before it anyway: ``from . import sibling`` is no circle)
        graph[name] = {m for m in found if m in names and m != name and not name.startswith(m + ".")}
    return graph


def _imports_of(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module
    parts = package.split(".")
    return ".".join(parts[:len(parts) - (node.level - 1)] + ([node.module] if node.module else []))


def test_no_import_circle_between_the_modules_of_pmrs():
    graph = _module_graph()
    assert "pmrs.serving.recommend" in graph and "pmrs.blend" in graph["pmrs.serving.recommend"]
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(v: str) -> None:   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert circles == []


def test_pyproject_installs_every_package_of_the_tree_under_its_name():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert cfg["package-dir"] == APPLICATIONS
    tree = {".".join(p.parent.relative_to(ROOT).parts) for p in ROOT.glob("pmrs/**/__init__.py")}
    tree |= {name for name, folder in APPLICATIONS.items() if (ROOT / folder / "__init__.py").exists()}
    data = {"pmrs.web.static", "pmrs.web.templates"}   # folders of package data
    assert set(cfg["packages"]) == tree | data
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {s.split(":")[0].split(".")[0] for s in scripts.values()} == {"pmrs", *APPLICATIONS}


def test_a_folder_named_pmrs_in_the_current_directory_does_not_hide_a_regular_package(tmp_path):
    (tmp_path / "pmrs").mkdir()   # an empty work directory named like the library
    # (PYTHONPATH puts tmp_path first, as `python -c` puts the current directory; the library is
    # found later on the path as a regular package, as a wheel or a strict editable install is)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", "import pmrs; print(pmrs.Recommender.__module__)"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "pmrs.recommender", done.stderr
    assert shadowed_package(tmp_path / "pmrs", path=[str(ROOT)]) is None


def test_a_work_directory_that_would_hide_the_library_is_reported(tmp_path, caplog):
    from pmrs.config import resolve_workdir

    work = tmp_path / "pmrs"
    # found only by a finder asked after the path (setuptools' default editable install): hidden
    assert shadowed_package(work, path=[str(tmp_path / "elsewhere")]) == "pmrs"
    assert shadowed_package(tmp_path / "pmrs_server", path=[]) == "pmrs_server"
    assert shadowed_package(tmp_path / "pmrs-data", path=[]) is None
    with caplog.at_level("WARNING", logger="pmrs.config"):
        resolve_workdir(tmp_path / "pmrs-data")
        assert not caplog.records
        if shadowed_package(work):   # (this environment: how pmrs is installed decides)
            resolve_workdir(work)
            assert "would hide the installed pmrs package" in caplog.text


def test_this_installation_is_not_hidden_by_a_work_directory(tmp_path):
    """With PYTHONPATH unset, as a user runs it: skipped where pmrs is installed with setuptools'
    default (lenient) editable mode, the case the warning above is for."""
    try:
        metadata.distribution("pmrs")
    except metadata.PackageNotFoundError:
        pytest.skip("pmrs is not installed in this environment")
    # (the finder a lenient editable install imports at start-up, from its .pth file)
    if any(name.startswith("__editable___pmrs_") and name.endswith("_finder") for name in sys.modules):
        pytest.skip("pmrs is installed in setuptools' lenient editable mode here (reinstall with `make install`)")
    (tmp_path / "pmrs").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", "import pmrs, pmrs_server; pmrs.Recommender"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
