"""The gateway's settings in a Django project: Django's settings first, then the environment.

Every name of DESIGN.md §3 may be set in the project's settings module (`WPP_VERIFY_TOKEN =
"..."`, `WORKERS = 2`, `BR_NINTH_DIGIT = True`), or in a `WHATSAPP_GATEWAY` dict when the
project already uses the name (`WHATSAPP_GATEWAY = {"DATABASE_URL": ...}`); a name it does not
set is read from the environment, then `.env`, then `variables.env`, as the gateway reads it.

The store: `DATABASE_URL` when a source names it, else the project's own database
(`DATABASES["default"]`, PostgreSQL or SQLite) turned into a SQLAlchemy URL, so the webhook
bodies and jobs live beside the project's data and every web and worker process of the
project shares them with nothing more to run (docs/decisions.md, "The Django app's store").
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from whatsapp_api_integration.settings import (
    DEFAULT_ENV_FILES,
    SETTING_NAMES,
    Settings,
    SettingsError,
    load_settings,
)

DJANGO_SOURCE = "Django settings"
NAMESPACE = "WHATSAPP_GATEWAY"
_NOT_AT_TOP_LEVEL = frozenset({"LOG_FORMAT", "LOG_LEVEL"})
DATABASE_ALIAS = "default"

# Django's database engines we can reach with SQLAlchemy, by the store's dialect.
_POSTGRESQL_ENGINES = (
    "django.db.backends.postgresql",
    "django.db.backends.postgresql_psycopg2",
    "django.contrib.gis.db.backends.postgis",
)
_SQLITE_ENGINES = ("django.db.backends.sqlite3", "django.contrib.gis.db.backends.spatialite")


def django_values(django_settings: Any) -> dict[str, str]:
    """The gateway settings a Django settings object names, as the strings the loader reads.

    A name is looked up in the `WHATSAPP_GATEWAY` dict first (for a name the project already
    uses for something else, such as its own DATABASE_URL or LOG_FORMAT), then at the top
    level. LOG_FORMAT and LOG_LEVEL are never read at the top level: Django's LOGGING rules
    logging here, and a project's own LOG_FORMAT is likely a format string. None means unset;
    booleans become true/false and numbers their text. Anything else is an error naming the
    setting.
    """
    namespaced = getattr(django_settings, NAMESPACE, None)
    problems: list[str] = []
    if namespaced is None:
        namespaced = {}
    elif not isinstance(namespaced, Mapping):
        problems.append(
            f"{NAMESPACE} (Django settings): expected a dict of gateway settings, "
            f"got {type(namespaced).__name__}"
        )
        namespaced = {}
    problems += [
        f"{NAMESPACE}[{key!r}] (Django settings): not a setting of the gateway"
        for key in namespaced
        if key not in SETTING_NAMES
    ]
    values: dict[str, str] = {}
    for name in SETTING_NAMES:
        if name in namespaced:
            value, where = namespaced[name], f"{NAMESPACE}[{name!r}]"
        elif name in _NOT_AT_TOP_LEVEL:
            continue
        else:
            value, where = getattr(django_settings, name, None), name
        if value is None:
            continue
        if isinstance(value, bool):
            values[name] = "true" if value else "false"
        elif isinstance(value, (str, int, float)):
            values[name] = str(value)
        elif isinstance(value, os.PathLike):
            values[name] = os.fspath(value)
        else:
            problems.append(
                f"{where} (Django settings): expected a string, number or boolean, "
                f"got {type(value).__name__}"
            )
    if problems:
        raise SettingsError(problems)
    return values


def sqlalchemy_url(database: Mapping[str, Any], alias: str = DATABASE_ALIAS) -> str:
    """A SQLAlchemy URL for one entry of Django's DATABASES; SettingsError when the store
    cannot use that database (it supports PostgreSQL and SQLite, DESIGN.md §2)."""
    from sqlalchemy.engine import URL

    engine = str(database.get("ENGINE") or "")
    name = database.get("NAME")
    where = f"DATABASES[{alias!r}]"
    if engine in _SQLITE_ENGINES:
        if not name or str(name) == ":memory:" or "mode=memory" in str(name):
            raise SettingsError(
                [
                    f"DATABASE_URL: {where} is an in-memory SQLite database, which other "
                    "connections cannot see; set DATABASE_URL (e.g. sqlite:///whatsapp.db)"
                ]
            )
        return f"sqlite:///{Path(os.fspath(name)).resolve()}"
    if engine in _POSTGRESQL_ENGINES:
        options = database.get("OPTIONS") or {}
        # libpq's connection options (sslmode, options, service …) are query parameters;
        # Django's own (pool, isolation_level, server_side_binding) mean nothing to libpq.
        query = {
            key: str(value)
            for key, value in options.items()
            if isinstance(value, (str, int))
            and not isinstance(value, bool)
            and key not in ("isolation_level", "server_side_binding", "assume_role")
        }
        url = URL.create(
            "postgresql",
            username=database.get("USER") or None,
            password=database.get("PASSWORD") or None,
            host=database.get("HOST") or None,
            port=int(database["PORT"]) if database.get("PORT") else None,
            database=str(name) if name else None,
            query=query,
        )
        return url.render_as_string(hide_password=False)
    raise SettingsError(
        [
            f"DATABASE_URL: {where} uses {engine or 'no ENGINE'}, and the store needs "
            "PostgreSQL or SQLite; set DATABASE_URL to one (e.g. sqlite:///whatsapp.db)"
        ]
    )


def project_database_url(alias: str = DATABASE_ALIAS) -> str:
    """The SQLAlchemy URL of the project's database `alias`, as Django uses it now: during
    Django's tests that is the test database."""
    from django.db import connections

    return sqlalchemy_url(connections[alias].settings_dict, alias)


def normalise_database_url(url: str) -> str:
    """`postgres://` (Heroku, dj-database-url) is `postgresql://` to SQLAlchemy."""
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def load_gateway_settings(
    environ: Mapping[str, str] | None = None,
    *,
    env_files: Iterable[str | os.PathLike[str]] = DEFAULT_ENV_FILES,
) -> Settings:
    """The gateway's settings as this Django project defines them (see the module's doc)."""
    from django.conf import settings as django_settings

    env: Mapping[str, str] = os.environ if environ is None else environ
    files = tuple(env_files)
    from_django = django_values(django_settings)
    merged = {**env, **from_django}
    settings = load_settings(merged, env_files=files)
    sources = dict(settings.sources)
    if sources.get("DATABASE_URL", "default").split(" ")[-1] in ("default", "(empty)"):
        merged["DATABASE_URL"] = project_database_url()
        settings = load_settings(merged, env_files=files)
        sources = dict(settings.sources)
        sources["DATABASE_URL"] = f"DATABASES[{DATABASE_ALIAS!r}]"
    for name in from_django:
        sources[name] = DJANGO_SOURCE
    # normalised again for a URL that .env or variables.env named
    return dataclasses.replace(
        settings, database_url=normalise_database_url(settings.database_url), sources=sources
    )


def database_alias_for_store(settings: Settings) -> str | None:
    """The Django database alias the store lives in, or None when DATABASE_URL names one."""
    if settings.sources.get("DATABASE_URL") == f"DATABASES[{DATABASE_ALIAS!r}]":
        return DATABASE_ALIAS
    return None
