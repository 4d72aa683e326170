"""Declared dependencies cover what the code imports.

* every third-party package that a module of ``llm4sbr_core/`` or ``workflow_scripts/``
  imports is declared in ``pyproject.toml`` — at module level in ``dependencies`` (a plain
  install imports every module), inside a function in ``dependencies`` or an extra;
* every rule's conda environment (``conda:`` in ``rules/*.smk``) provides the third-party
  imports of the script it runs, following ``llm4sbr_core`` imports transitively.

Import names are mapped to distributions with ``importlib.metadata.packages_distributions``
(``yaml`` → PyYAML, ``faiss`` → faiss-cpu); a package not installed here (vllm) maps to
its own name.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow_scripts"
LOCAL_SCRIPT_MODULES = {p.stem for p in SCRIPTS.glob("*.py")}

#: conda-forge names whose PyPI distribution is called differently
CONDA_TO_PYPI = {"pytorch": "torch", "matplotlib-base": "matplotlib"}

#: distributions that only one environment must provide: a backend chosen by config,
#: imported inside the function that builds it (rules/models.smk picks the environment)
BACKEND_ENVS = {"vllm": "envs/vllm.yaml"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    return normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1))


def pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def base_requirements() -> set[str]:
    return {requirement_name(r) for r in pyproject()["project"]["dependencies"]}


def all_requirements() -> set[str]:
    extras = pyproject()["project"].get("optional-dependencies", {})
    return base_requirements() | {requirement_name(r) for reqs in extras.values()
                                  for r in reqs}


@cache
def distributions_of() -> dict[str, list[str]]:
    return packages_distributions()


def distribution(top: str) -> str:
    """The distribution providing the top-level import name ``top``."""
    return normalize(distributions_of().get(top, [top])[0])


def is_third_party(top: str) -> bool:
    return (top not in sys.stdlib_module_names and top != "llm4sbr_core"
            and top not in LOCAL_SCRIPT_MODULES)


def module_path(name: str) -> Path | None:
    """The file of an ``llm4sbr_core`` module or package."""
    base = REPO.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def package_of(path: Path) -> list[str]:
    if not path.is_relative_to(REPO / "llm4sbr_core"):
        return []
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return parts[:-1]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(absolute module name, imported at module level) for every import in ``path``;
    ``from pkg import name`` yields ``pkg.name`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    package = package_of(path)
    out = []
    for node in ast.walk(tree):
        level = id(node) in top_level
        if isinstance(node, ast.Import):
            out += [(alias.name, level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            out.append((target, level))
            if target.startswith("llm4sbr_core"):
                out += [(f"{target}.{a.name}", level) for a in node.names
                        if module_path(f"{target}.{a.name}")]
    return out


def third_party_imports(path: Path) -> list[tuple[str, bool]]:
    return [(name.split(".")[0], level) for name, level in imports(path)
            if name and is_third_party(name.split(".")[0])]


def code_files() -> list[Path]:
    return sorted((REPO / "llm4sbr_core").rglob("*.py")) + sorted(SCRIPTS.glob("*.py"))


def test_every_import_is_declared():
    base, declared = base_requirements(), all_requirements()
    missing = []
    for path in code_files():
        for top, level in third_party_imports(path):
            dist = distribution(top)
            needed = base if level else declared
            if dist not in needed:
                where = "dependencies" if level else "dependencies or an extra"
                missing.append(f"{path.relative_to(REPO)}: import {top} ({dist}) is not in "
                               f"pyproject.toml's {where}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_declared_dependencies_are_used():
    """Every base dependency is imported somewhere, or listed here with why not."""
    used_elsewhere = {
        "snakemake": "runs the workflow",
        "gguf": "transformers reads the embedded GGUF model with it",
        "huggingface-hub": "llm4sbr_core/llm/fetch.py runs snapshot_download in a child",
    }
    imported = {distribution(top) for path in code_files()
                for top, _ in third_party_imports(path)}
    unused = base_requirements() - imported - set(used_elsewhere)
    assert not unused, f"declared but never imported: {sorted(unused)}"


def test_the_checker_sees_an_undeclared_import(tmp_path, monkeypatch):
    module = tmp_path / "mod.py"
    module.write_text("import numpy\nimport left_pad_xyz\n\ndef f():\n    import vllm\n")
    found = {(distribution(top), level) for top, level in third_party_imports(module)}
    assert found == {("numpy", True), ("left-pad-xyz", True), ("vllm", False)}
    assert "left-pad-xyz" not in all_requirements()


# --- conda environments ---------------------------------------------------------------

def rule_blocks() -> dict[str, str]:
    """{rule name: its text} for the named rules of rules/*.smk."""
    out = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = [(m.start(), m.group(1)) for m in
                  re.finditer(r"^(?:rule|localrule|checkpoint)\s+(\w+)\s*:", text, re.M)]
        ends = [start for start, _ in starts[1:]] + [len(text)] * bool(starts)
        for (start, name), end in zip(starts, ends, strict=True):
            out[name] = text[start:end]
    return out


def directive(block: str, name: str) -> str | None:
    match = re.search(rf"^\s+{name}:\s*\n\s+(.+)$", block, re.M)
    return match.group(1).strip() if match else None


def rule_envs(block: str) -> list[str]:
    """The environment files a rule may run in: a literal path, or every environment
    rules/models.smk can choose for the LLM backend."""
    value = directive(block, "conda")
    if value is None:
        return []
    literal = re.fullmatch(r"""["'](?:\.\./)?(envs/[\w.-]+\.yaml)["']""", value)
    if literal:
        return [literal.group(1)]
    if value == "LLM_CONDA_ENV":
        return ["envs/gpu.yaml", "envs/vllm.yaml"]
    raise AssertionError(f"unknown conda directive {value!r}: teach this test its envs")


def rule_script(block: str) -> Path | None:
    value = directive(block, "script")
    if value is None:
        return None
    return (REPO / "rules" / value.strip("\"'")).resolve()


def env_packages(env: str) -> set[str]:
    spec = yaml.safe_load((REPO / env).read_text())
    out = set()
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            out |= {requirement_name(r) for r in dep.get("pip", []) if not r.startswith("-")}
        else:
            name = normalize(re.split(r"[\s=<>!]", dep.strip())[0])
            out.add(normalize(CONDA_TO_PYPI.get(name, name)))
    return out


def reached_distributions(script: Path) -> dict[str, str]:
    """{distribution: a file importing it} over the script and every llm4sbr_core module
    it reaches, including imports made inside functions and the packages' __init__.py."""
    seen: set[Path] = set()
    todo = [script]
    out: dict[str, str] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name, _ in imports(path):
            top = name.split(".")[0]
            if top == "llm4sbr_core":
                parts = name.split(".")
                for k in range(1, len(parts) + 1):  # the parent packages run too
                    found = module_path(".".join(parts[:k]))
                    if found:
                        todo.append(found)
            elif name and is_third_party(top):
                out.setdefault(distribution(top), str(path.relative_to(REPO)))
    return out


def env_rules() -> list[tuple[str, str, Path]]:
    out = []
    for name, block in rule_blocks().items():
        script = rule_script(block)
        for env in rule_envs(block):
            if script is not None:
                out.append((name, env, script))
    return out


def test_rules_with_scripts_name_an_environment():
    bare = [name for name, block in rule_blocks().items()
            if rule_script(block) is not None and not rule_envs(block)]
    assert not bare, f"rules with a script: but no conda: {bare}"
    assert {env for _, env, _ in env_rules()} >= {"envs/cpu.yaml", "envs/gpu.yaml",
                                                   "envs/vllm.yaml", "envs/report.yaml"}


@pytest.mark.parametrize("rule, env, script",
                         [pytest.param(*r, id=f"{r[0]}-{Path(r[1]).stem}") for r in env_rules()])
def test_environment_covers_the_rule_imports(rule, env, script):
    provided = env_packages(env)
    needed = {dist: where for dist, where in reached_distributions(script).items()
              if BACKEND_ENVS.get(dist, env) == env}
    missing = {dist: where for dist, where in needed.items() if dist not in provided}
    assert not missing, (f"rule {rule}: {env} lacks "
                         + ", ".join(f"{d} (imported by {w})" for d, w in sorted(missing.items())))


def test_backend_environments_provide_their_backend():
    for dist, env in BACKEND_ENVS.items():
        assert dist in env_packages(env), f"{env} does not install {dist}"


def test_post_deploy_script_installs_the_embedded_models():
    """envs/gpu.post-deploy.sh installs the Makefile's embedded models, without their
    dependencies (which a conda pip section cannot express)."""
    models = re.search(r"^EMBEDDED_MODELS\s*:=\s*(.+)$", (REPO / "Makefile").read_text(),
                       re.M).group(1).split()
    for env in ("gpu", "cpu", "vllm"):
        script = REPO / "envs" / f"{env}.post-deploy.sh"
        if not script.exists():
            continue
        text = script.read_text()
        assert "--no-deps" in text
        assert all(m in text for m in models), f"{script.name} lacks some of {models}"
    assert (REPO / "envs" / "gpu.post-deploy.sh").exists()
