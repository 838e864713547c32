"""Tests of the Django app (Django configured by this folder's conftest only)."""
