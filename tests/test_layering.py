"""The package's layers import downward only, not even for type checking (DESIGN.md
"Architecture"): a module may import its own layer and the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "durable"

# Each layer with the layers it may import (its own is always allowed).
ALLOWED: dict[str, set[str]] = {
    "_base": set(),
    "journal": {"_base"},
    "workflow": {"_base", "journal"},
    "store": {"_base", "journal"},
    "observe": {"_base", "journal", "workflow"},
    "runtime": {"_base", "journal", "workflow", "store", "observe"},
    "adapters": {"_base", "journal", "workflow", "store", "observe", "runtime", "public"},
    # An agent framework's integration is built on what any user can import, nothing else.
    "integrations": {"public"},
    "public": {"_base", "journal", "workflow", "store", "observe", "runtime", "adapters"},
}
LEAVES = {"errors", "retry"}
"""Public modules every layer may import: they import only ``_base``."""


def layer_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__",):
        return "public"
    top = parts[1]
    if top in LEAVES:
        return "_base"
    if top in ("cli", "server", "testing"):
        return "adapters"
    if top == "integrations":
        return "integrations"
    return top


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{module}:{node.lineno}: use an absolute import"
            if node.module and node.module.split(".")[0] == "durable":
                if node.module == "durable":  # a submodule, or a public name
                    found += [(node.lineno, _from_package(a.name)) for a in node.names]
                else:
                    found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("durable")]
    return found


def _from_package(name: str) -> str:
    """What ``from durable import name`` imports: a submodule, or the public API."""
    path = PACKAGE / name
    return f"durable.{name}" if path.is_dir() or path.with_suffix(".py").exists() else "durable"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def test_every_layer_is_known() -> None:
    for name, _ in modules():
        assert layer_of(name) in ALLOWED, f"{name} is in no layer; add it to ALLOWED"


@pytest.mark.parametrize(("name", "path"), modules(), ids=[name for name, _ in modules()])
def test_imports_point_down(name: str, path: Path) -> None:
    mine = layer_of(name)
    upward = []
    for line, imported in imports_of(path, name):
        theirs = "public" if imported == "durable" else layer_of(imported)
        if theirs != mine and theirs not in ALLOWED[mine]:
            upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not upward, f"{mine} may not import upward:\n" + "\n".join(upward)
