"""The tests' project on PostgreSQL: DATABASES from WHATSAPP_TEST_DJANGO_PG, a SQLAlchemy-style
URL whose `options` query parameter (a search_path) becomes Django's OPTIONS, as a project
that keeps its tables in a schema would write it."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

from django_project.settings import *  # noqa: F403 (the same project, another database)

_url = urlsplit(os.environ["WHATSAPP_TEST_DJANGO_PG"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        "OPTIONS": {key: values[-1] for key, values in parse_qs(_url.query).items()},
    }
}
