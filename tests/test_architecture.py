"""The package's import drawing (docs/architecture.md) stays true: no upward import, no
circle, the two halves of layer 2 apart, and every ``file:function`` the page names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import llm4sbr_core

PACKAGE = Path(llm4sbr_core.__file__).parent
REPO = PACKAGE.parent

#: top-level module or sub-package → layer (docs/architecture.md)
LAYERS: dict[str, int] = {
    "errors": 0, "io": 0, "logs": 0, "machine": 0, "layout": 0, "variants": 0, "metrics": 0,
    "embedded": 0,
    "data": 1,
    "prompts": 2, "llm": 2, "text": 2, "localize": 2, "localize_stage": 2, "models": 2,
    "config": 3,
    "train": 4,
    "report": 5,
    "recommend": 6, "cli": 6,
}
#: the two halves of layer 2, which must not import each other
INTENT_STAGE = {"prompts", "llm", "text", "localize", "localize_stage"}
SESSION_MODELS = {"models"}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The llm4sbr_core modules ``path`` imports (at any depth of the file)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("llm4sbr_core")}
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if not target.startswith("llm4sbr_core"):
                continue
            for alias in node.names:  # `from . import x` imports the module x
                candidate = f"{target}.{alias.name}"
                as_path = REPO.joinpath(*candidate.split("."))
                is_module = as_path.with_suffix(".py").exists() or as_path.is_dir()
                out.add(candidate if is_module else target)
    return out


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def unit(module: str) -> str:
    """The top-level module or sub-package a module belongs to (its layer's unit)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "llm4sbr_core"


def test_every_unit_has_a_layer():
    units = {unit(m) for m in graph()} - {"llm4sbr_core", "schemas"}
    assert units <= set(LAYERS), f"add {sorted(units - set(LAYERS))} to LAYERS and the docs"


def test_no_upward_import():
    upward = [f"{m} (layer {LAYERS[unit(m)]}) imports {t} (layer {LAYERS[unit(t)]})"
              for m, targets in graph().items() if unit(m) in LAYERS
              for t in targets if unit(t) in LAYERS and LAYERS[unit(t)] > LAYERS[unit(m)]]
    assert not upward, "\n".join(upward)


def test_the_halves_of_layer_two_stay_apart():
    crossing = [f"{m} imports {t}" for m, targets in graph().items() for t in targets
                if (unit(m) in INTENT_STAGE and unit(t) in SESSION_MODELS)
                or (unit(m) in SESSION_MODELS and unit(t) in INTENT_STAGE)]
    assert not crossing, "\n".join(crossing)


def test_no_import_circle():
    g = graph()
    # the package's own __init__ files are containers: `import llm4sbr_core.x.y` runs them,
    # but an edge to a package __init__ that only re-exports is not a dependency circle
    # unless the __init__ imports back, which the walk below sees.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(g):
        if node not in state and (circle := visit(node)):
            pytest.fail("import circle: " + " → ".join(circle))


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The test above is not vacuous: an upward import is found."""
    fake = PACKAGE / "data" / "_upward_probe.py"
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: [fake])
    monkeypatch.setattr(Path, "read_text",
                        lambda self, *a, **k: "from ..train.run import run_training\n")
    with pytest.raises(AssertionError, match="layer 1.*imports llm4sbr_core.train.run"):
        test_no_upward_import()


def documented_functions() -> list[tuple[str, str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    return sorted(set(re.findall(r"`(llm4sbr_core/[\w/]+\.py|[\w/]+\.py):(\w+)`", text)))


@pytest.mark.parametrize("path, name", documented_functions())
def test_documented_functions_exist(path, name):
    file = REPO / path if path.startswith("llm4sbr_core/") else PACKAGE / path
    assert file.exists(), f"docs/architecture.md names {path}, which does not exist"
    tree = ast.parse(file.read_text())
    defined = {n.name for n in ast.walk(tree)
               if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    assert name in defined, f"docs/architecture.md names {path}:{name}, not defined there"


def test_the_docs_name_enough_functions():
    assert len(documented_functions()) >= 20
