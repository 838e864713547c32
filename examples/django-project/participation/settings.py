"""Settings of the example project. The WhatsApp gateway's settings (DESIGN.md §3 names) may
be written here; the ones left out are read from the environment (or a .env file), so the
secrets stay out of the code."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "false").lower() == "true"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
USE_TZ = True
LANGUAGE_CODE = "pt-br"
TIME_ZONE = "America/Sao_Paulo"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "participation",
    "whatsapp_api_integration.integrations.django",  # the WhatsApp webhook and worker
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "participation.urls"
WSGI_APPLICATION = "participation.wsgi.application"

# The project's database; the gateway's store lives in it too (no DATABASE_URL set).
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ---- WhatsApp gateway ----
# The bot: any callable of the project, given each message, returning Rasa-shaped replies.
ANSWER_BACKEND = "participation.bot:answer"
# From the environment: WPP_AUTHORIZATION_TOKEN, WPP_APP_SECRET, WPP_VERIFY_TOKEN,
# WPP_PHONE_NUMBER_IDENTIFIER (without a token: sandbox, replies recorded, not sent), and
# WORKERS (default 4 threads in the web process; 0 to leave the jobs to whatsapp_worker).
