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
