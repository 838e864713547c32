"""Django for these tests only: configured from tests/django_project/settings.py when this
folder is collected, with `settings.configure` rather than DJANGO_SETTINGS_MODULE, so no
other test (nor any process another test starts) sees a Django settings module. pytest-django
then gives these tests its `settings` fixture, and Django's test client and DRF's APIClient
work as in any Django project. Without Django installed, this folder is not collected."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("django") is None or importlib.util.find_spec("pytest_django") is None:
    collect_ignore_glob = ["*.py"]
else:
    import django
    from django.conf import settings as django_settings

    if not django_settings.configured:
        project = importlib.import_module("django_project.settings")
        django_settings.configure(
            **{name: getattr(project, name) for name in dir(project) if name.isupper()}
        )
        django.setup()

    @pytest.fixture(autouse=True)
    def fresh_gateway() -> Iterator[None]:
        """Each test gets the gateway its settings describe; none outlives it."""
        from whatsapp_api_integration.integrations.django.runtime import close_gateway

        close_gateway()
        yield
        close_gateway()

    @pytest.fixture(scope="session", autouse=True)
    def remove_project_database() -> Iterator[None]:
        yield
        name = Path(django_settings.DATABASES["default"]["NAME"])
        for path in (name, *(name.with_name(name.name + s) for s in ("-wal", "-shm"))):
            path.unlink(missing_ok=True)
