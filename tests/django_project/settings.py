"""Settings of the tests' Django project: a project with hostile DRF defaults (every view
needs a logged-in user, anonymous callers get 1 request a day) and CSRF on, which the
webhook must not be subject to. tests/django_integration/conftest.py configures Django
with this module for the Django tests only."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SECRET_KEY = "tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
LANGUAGE_CODE = "pt-br"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "whatsapp_api_integration.integrations.django",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
]
ROOT_URLCONF = "django_project.urls"
# The project's own database: a file per test session (the store may live in it).
PROJECT_DATABASE = Path(tempfile.gettempdir()) / f"whatsapp-django-tests-{os.getpid()}.sqlite3"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": PROJECT_DATABASE,
        "TEST": {"NAME": PROJECT_DATABASE},
    }
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.AnonRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"anon": "1/day"},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.BrowsableAPIRenderer"],
}

# The gateway's settings, the names of DESIGN.md §3, as a Django project sets them.
WPP_VERIFY_TOKEN = "verify-token-for-tests-1234"
WPP_APP_SECRET = "app-secret-for-tests-abcdef987654"
WPP_PHONE_NUMBER_IDENTIFIER = "106540352242922"
ANSWER_BACKEND = "django_project.bot:answer"
WORKERS = 0  # tests work jobs with `manage.py whatsapp_worker --once` unless they say otherwise
