"""Django and DRF are imported by the Django app only (integrations/django), so the gateway,
the core and the Rasa channel install and run without them."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "whatsapp_api_integration"
DJANGO_APP = PACKAGE / "integrations" / "django"
FRAMEWORKS = ("django", "rest_framework")


def framework_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        where = f"{path.relative_to(PACKAGE)}:{node.lineno}"
        found += [f"{where} imports {name}" for name in names if name.split(".")[0] in FRAMEWORKS]
    return found


def test_only_the_django_app_imports_django() -> None:
    offences = [
        offence
        for path in sorted(PACKAGE.rglob("*.py"))
        if DJANGO_APP not in path.parents
        for offence in framework_imports(path)
    ]
    assert offences == []


def test_the_check_sees_the_django_apps_own_imports() -> None:
    """The scan is not blind: it finds the imports the Django app does have."""
    assert any("django.http" in line for line in framework_imports(DJANGO_APP / "views.py"))
    assert any("rest_framework" in line for line in framework_imports(DJANGO_APP / "drf.py"))
