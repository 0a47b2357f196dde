"""pyproject.toml declares what the code imports, and nothing it does not; the report captions render."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]

#: Declared but never imported, on purpose.
NOT_IMPORTED = {
    "snakemake-executor-plugin-slurm": "Snakemake loads it for profiles/slurm",
    "packaging": "an upper bound that Snakemake 9.27 needs",
}


def _declared(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(line).name) for line in requirements}


def _imported(folder: Path) -> set[str]:
    """Distributions of the third-party modules that the Python files under ``folder`` import."""
    modules = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    distributions = importlib.metadata.packages_distributions()
    local = {path.stem for path in (REPO / "tests").glob("_*.py")} | {"metantk_nas", "conftest"}
    found = set()
    for module in modules - set(sys.stdlib_module_names) - local:
        assert module in distributions, f"{module}: imported under {folder.name}/ but not installed"
        found |= {canonicalize_name(name) for name in distributions[module]}
    return found


def test_the_package_declares_exactly_what_it_imports():
    declared = _declared(PROJECT["dependencies"])
    imported = _imported(REPO / "src" / "metantk_nas")
    assert sorted(imported - declared) == []  # imported, not declared
    assert sorted(declared - imported) == sorted(NOT_IMPORTED)  # declared, never imported


def _installed_with(names: set[str]) -> set[str]:
    """What installing ``names`` installs with them (their own unconditional requirements)."""
    found = set()
    for name in names:
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                found.add(canonicalize_name(requirement.name))
    return found


def test_what_only_the_tests_import_is_in_the_test_extra():
    declared = _declared(PROJECT["dependencies"])
    test_only = _imported(REPO / "tests") - declared - _installed_with(declared)  # docutils, jinja2: Snakemake's
    tools = {"snakefmt", "pytest-xdist"}  # run by `make lint` / `make test`, never imported
    assert sorted(test_only) == sorted(_declared(PROJECT["optional-dependencies"]["test"]) - tools)
    assert "torchvision==0.29.1" in PROJECT["optional-dependencies"]["test"]


@pytest.mark.parametrize("table, opening", [("table1", "Reproduction of Paper Table 1:"),
                                            ("table2", "Reproduction of Paper Table 2, the ablation:")])
def test_the_table_caption_describes_each_table(table, opening):
    """One caption file for the one table rule, rendered as Snakemake's report does (Jinja, then docutils)."""
    from types import SimpleNamespace

    from docutils.core import publish_parts
    from jinja2 import Environment

    text = (REPO / "workflow" / "report" / "table.rst").read_text(encoding="utf-8")
    rendered = Environment(trim_blocks=True, lstrip_blocks=True).from_string(text).render(
        snakemake=SimpleNamespace(wildcards=SimpleNamespace(table=table)))
    assert rendered.startswith(opening) and rendered.count("Reproduction of Paper Table") == 1
    assert opening in publish_parts(rendered, writer="html", settings_overrides={"report_level": 2,
                                                                                     "halt_level": 2})["body"]
