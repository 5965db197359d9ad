"""Dependencies run one way: digest → subscriptions → papers, with core and mailing
below every app and the project package (paperboy) on top. Imports inside functions
count; an import under ``if TYPE_CHECKING:`` is allowed only with a comment saying why.
"""

import ast

import pytest
from django.apps import apps

from tests.support.paths import ROOT

# What each package may import, besides itself.
ALLOWED = {
    "core": set(),
    "mailing": set(),
    "papers": {"core"},
    "subscriptions": {"core", "mailing", "papers"},
    "digest": {"core", "mailing", "papers", "subscriptions"},
    "paperboy": {"core", "mailing", "papers", "subscriptions", "digest"},
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _excused(tree: ast.Module, lines: list[str]) -> set[int]:
    """ids of the import nodes under an ``if TYPE_CHECKING:`` that carries a comment."""
    excused = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            block = lines[node.lineno - 1 : node.end_lineno]
            if any("#" in line for line in block):
                excused.update(id(child) for child in ast.walk(node))
    return excused


def _imported(node: ast.AST, module: str) -> list[str]:
    """The modules an import statement names, relative ones resolved from ``module``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".")[: -node.level]
            return [".".join([*base, node.module] if node.module else base)]
        return [node.module or ""]
    return []


def violations(source: str, module: str) -> list[str]:
    """Each import in ``source`` (the text of ``module``) against the direction."""
    package = module.split(".")[0]
    tree = ast.parse(source)
    excused = _excused(tree, source.splitlines())
    found = []
    for node in ast.walk(tree):
        if id(node) in excused:
            continue
        for name in _imported(node, module):
            target = name.split(".")[0]
            if target in ALLOWED and target != package and target not in ALLOWED[package]:
                found.append(f"{module}:{node.lineno} imports {name}")
    return found


def _modules():
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_against_the_direction():
    found = [
        problem for module, path in _modules() for problem in violations(path.read_text(), module)
    ]

    assert found == []


def test_every_package_of_the_layout_is_checked():
    modules = [module for module, _ in _modules()]

    for package in ALLOWED:
        assert f"{package}.__init__" not in modules and package in modules


def test_migrations_depend_only_on_apps_below():
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    found = [
        f"{app}.{name} depends on {dependency}"
        for (app, name), migration in loader.disk_migrations.items()
        if app in ALLOWED
        for dependency, _ in migration.dependencies
        if dependency in ALLOWED and dependency != app and dependency not in ALLOWED[app]
    ]

    assert found == []


def test_models_relate_only_to_apps_below():
    found = [
        f"{model._meta.label}.{field.name} → {field.related_model._meta.label}"
        for model in apps.get_models()
        if model._meta.app_label in ALLOWED
        for field in model._meta.get_fields()
        if field.is_relation
        and field.concrete
        and field.related_model is not None
        and (target := field.related_model._meta.app_label) in ALLOWED
        and target != model._meta.app_label
        and target not in ALLOWED[model._meta.app_label]
    ]

    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from digest import sending",
        "import digest.models",
        "def send():\n    from digest.sending import send_batch\n",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from digest.models import Digest\n",
    ],
)
def test_an_import_against_the_direction_is_found(source):
    assert violations(source, "subscriptions.services") != []


@pytest.mark.parametrize(
    "source",
    [
        "from papers.models import Topic",
        "from . import states",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:  # only for the annotation of the receiver's argument\n"
        "    from digest.models import Digest\n",
    ],
)
def test_an_import_along_the_direction_or_excused_passes(source):
    assert violations(source, "subscriptions.services") == []
