"""A Django project for the Django app's tests (settings, URLs and a bot of its own)."""
