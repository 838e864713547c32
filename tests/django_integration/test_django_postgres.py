"""A Django project on PostgreSQL keeps the store in its own database (here: its own schema,
through Django's OPTIONS): `manage.py migrate` builds Django's and the store's tables side by
side, the webhook stores there, the worker answers. In a subprocess, since the tests' Django
is configured for SQLite. Needs TEST_DATABASE_URL (CI sets it)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy

from fakes import FakeGraph, fake_graph_fixture, text_body  # noqa: F401 (fixtures)
from whatsapp_api_integration.store import Store

TESTS = Path(__file__).resolve().parents[1]
SCRIPT = """
import sys
import django
django.setup()
from django.core.management import call_command
from django.test import Client
from whatsapp_api_integration.core.signature import sign
from django_project import settings

call_command("migrate", verbosity=1)
body = open(sys.argv[1], "rb").read()
response = Client().post(
    "/webhooks/whatsapp/webhook", data=body, content_type="application/json",
    headers={"X-Hub-Signature-256": sign(body, settings.WPP_APP_SECRET)},
)
print("webhook", response.status_code)
call_command("whatsapp_worker", "--once")
"""


def test_the_store_lives_in_the_projects_postgresql_database(
    postgres_url: str, fake_graph: FakeGraph, tmp_path: Path
) -> None:
    message_id = f"wamid.django.pg.{uuid.uuid4().hex}"
    body_file = tmp_path / "body.json"
    body_file.write_bytes(text_body(message_id, "oi"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WPP_", "DATABASE_", "WORKERS", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="django_project.settings_postgres",
        WHATSAPP_TEST_DJANGO_PG=postgres_url,
        PYTHONPATH=os.pathsep.join([str(TESTS), *filter(None, [env.get("PYTHONPATH")])]),
        WPP_AUTHORIZATION_TOKEN=fake_graph.token,
        WPP_API_BASE_URL=fake_graph.url,
    )
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(body_file)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "WhatsApp gateway store: migrations at" in run.stdout
    assert "webhook 200" in run.stdout
    assert "worked 1 job(s)" in run.stdout

    [reply] = fake_graph.message_bodies
    assert reply["interactive"]["body"]["text"].startswith("Olá, Contato 4321! Recebido: oi")
    store = Store(postgres_url)  # its engine, with the driver this SQLAlchemy knows
    try:
        with store.engine.connect() as connection:
            tables = set(sqlalchemy.inspect(connection).get_table_names())
            state = connection.execute(
                sqlalchemy.text("SELECT state FROM inbound_messages WHERE wamid = :w"),
                {"w": message_id},
            ).scalar_one()
    finally:
        store.close()
    # Django's tables and the store's, in the one schema the project's OPTIONS chose.
    assert {"auth_user", "django_migrations", "inbound_messages", "alembic_version"} <= tables
    assert state == "answered"
