"""The core imports nothing from the web, the store or the network (DESIGN.md §2)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.core

CORE = Path(__file__).parents[1] / "src" / "whatsapp_api_integration" / "core"
# Standard-library modules that reach the network, the file system's databases or a server.
FORBIDDEN_STDLIB = {
    "socket",
    "ssl",
    "http",
    "urllib",
    "sqlite3",
    "asyncio",
    "smtplib",
    "ftplib",
    "xmlrpc",
    "socketserver",
    "wsgiref",
    "subprocess",
    "threading",
    "multiprocessing",
}


def imported_top_level_modules(path: Path) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, node.lineno))
    return found


def test_core_modules_import_only_the_standard_library_and_the_core() -> None:
    offences = []
    for path in sorted(CORE.glob("*.py")):
        for module, line in imported_top_level_modules(path):
            top = module.split(".")[0]
            if module.startswith("whatsapp_api_integration."):
                if not module.startswith("whatsapp_api_integration.core"):
                    offences.append(f"{path.name}:{line} imports {module}")
            elif top in FORBIDDEN_STDLIB or top not in sys.stdlib_module_names:
                offences.append(f"{path.name}:{line} imports {module}")
    assert offences == []


def test_importing_the_core_loads_no_web_database_or_network_module() -> None:
    modules = sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import whatsapp_api_integration.core.{name}\n" for name in modules)
        + "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'flask', 'werkzeug', 'httpx', 'sqlalchemy', 'alembic', 'socket', 'ssl', 'sqlite3', "
        "'asyncio', 'pydantic', 'requests'})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
