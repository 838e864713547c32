"""The packaging metadata keeps its promises (DESIGN.md §13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as file:
        loaded: dict[str, Any] = tomllib.load(file)
        return loaded


def test_the_core_needs_no_third_party_package(pyproject: dict[str, Any]) -> None:
    assert pyproject["project"]["dependencies"] == []


def test_poetry_groups_repeat_the_pip_extras(pyproject: dict[str, Any]) -> None:
    extras = pyproject["project"]["optional-dependencies"]
    groups = pyproject["dependency-groups"]
    assert groups["server"] == extras["server"]
    assert groups["dev"] == extras["dev"]
    assert groups["django"] == extras["django"]
    assert groups["rasa"] == extras["rasa"]


def test_no_extra_pulls_pydantic_2_or_rasa(pyproject: dict[str, Any]) -> None:
    requirements = [
        r for extra in pyproject["project"]["optional-dependencies"].values() for r in extra
    ]
    names = {
        r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip().lower()
        for r in requirements
    }
    assert "rasa" not in names
    assert "pydantic" not in names


def test_the_django_app_and_the_pipeline_import_without_flask() -> None:
    """The [django] extra has no Flask: nothing the Django app imports may need it."""
    pytest.importorskip("django")
    script = """
import sys

class NoFlask:
    def find_spec(self, name, path=None, target=None):
        if name == "flask" or name.startswith("flask."):
            raise ImportError(f"{name} is blocked: the [django] extra does not install it")
        return None

sys.meta_path.insert(0, NoFlask())
import django
from django.conf import settings
settings.configure(INSTALLED_APPS=["whatsapp_api_integration.integrations.django"])
django.setup()
import whatsapp_api_integration.integrations.django.urls
import whatsapp_api_integration.integrations.django.runtime
import whatsapp_api_integration.web.intake
print("ok")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_bench_group_repeats_the_bench_extra(pyproject: dict[str, Any]) -> None:
    assert (
        pyproject["dependency-groups"]["bench"]
        == pyproject["project"]["optional-dependencies"]["bench"]
    )


# ---- each extra installs what its shape imports ---------------------------------------------

PACKAGE = Path(__file__).parents[1] / "src" / "whatsapp_api_integration"
# Third-party modules our code imports, and the distribution that installs each.
DISTRIBUTIONS = {
    "alembic": "alembic",
    "django": "Django",
    "dotenv": "python-dotenv",
    "flask": "Flask",
    "httpx": "httpx",
    "prometheus_client": "prometheus-client",
    "sqlalchemy": "SQLAlchemy",
    "werkzeug": "Flask",
    "yaml": "PyYAML",
}
# Imported only when present (DRF; PyYAML for `lint`, which names the extra to install when
# it is missing; aiohttp for the worker process's event loop, which sends from threads
# without it), or brought by another extra ([postgres], [server]) or by the host (Rasa).
OPTIONAL = {
    "aiohttp",
    "rest_framework",
    "yaml",
    "psycopg",
    "psycopg2",
    "granian",
    "rasa",
    "rasa_sdk",
    "sanic",
}


def _module_file(name: str) -> Path | None:
    relative = Path(*name.split(".")[1:])
    for candidate in (PACKAGE / relative / "__init__.py", PACKAGE / f"{relative}.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at load time or in a function; not under TYPE_CHECKING."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(inner) for child in node.body for inner in ast.walk(child)}
    found: set[str] = set()
    package = ".".join(("whatsapp_api_integration", *path.relative_to(PACKAGE).parent.parts))
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def third_party_imports(*entry_modules: str) -> set[str]:
    """The third-party top-level modules reachable from `entry_modules` through our code."""
    seen: set[str] = set()
    queue = list(entry_modules)
    third_party: set[str] = set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        if parts[0] != "whatsapp_api_integration":
            if parts[0] not in sys.stdlib_module_names and parts[0] != "__future__":
                third_party.add(parts[0])
            continue
        for depth in range(1, len(parts) + 1):  # a package's __init__ runs first
            path = _module_file(".".join(parts[:depth]))
            if path is not None and ".".join(parts[:depth]) not in seen:
                queue.append(".".join(parts[:depth]))
        path = _module_file(name)
        if path is not None:
            queue.extend(_imports(path))
    return third_party


def _names(requirements: list[str]) -> set[str]:
    return {r.split(";")[0].split("[")[0].split(">")[0].split("<")[0].strip() for r in requirements}


def _package_modules(package: str) -> list[str]:
    """`package` and every module below it."""
    root = PACKAGE / Path(*package.split(".")[1:])
    return [package] + [
        ".".join((package, *path.relative_to(root).with_suffix("").parts))
        for path in sorted(root.rglob("*.py"))
        if path.name != "__init__.py"
    ]


INTEGRATIONS = "whatsapp_api_integration.integrations"
SHAPES = {
    "django": _package_modules(f"{INTEGRATIONS}.django"),
    "rasa": [
        f"{INTEGRATIONS}.rasa",
        f"{INTEGRATIONS}.rasa_actions",
        f"{INTEGRATIONS}.rasa_failures",
    ],
    "server": _package_modules("whatsapp_api_integration.cli"),
}


@pytest.mark.parametrize("extra", sorted(SHAPES))
def test_an_extra_installs_what_its_shape_imports(pyproject: dict[str, Any], extra: str) -> None:
    """`pip install 'whatsapp-api-integration[django]'` is enough for the Django app (its
    views reuse the gateway's webhook module, which imports Flask), and so on."""
    needed = third_party_imports(*SHAPES[extra]) - OPTIONAL
    unknown = needed - set(DISTRIBUTIONS)
    assert not unknown, f"add these modules' distributions to DISTRIBUTIONS: {unknown}"
    installed = _names(pyproject["project"]["optional-dependencies"][extra])
    missing = {DISTRIBUTIONS[module] for module in needed} - installed
    assert not missing, f"[{extra}] lacks {sorted(missing)}"


def test_the_import_scan_sees_what_the_shapes_import() -> None:
    """The scan is not blind: it follows our modules to the frameworks they use."""
    assert {"django", "sqlalchemy", "httpx"} <= third_party_imports(*SHAPES["django"])
    assert "flask" not in third_party_imports(*SHAPES["django"])
    assert "rest_framework" in third_party_imports(*SHAPES["django"])  # drf.py, optional
    assert {"rasa", "sanic"} <= third_party_imports(*SHAPES["rasa"])
