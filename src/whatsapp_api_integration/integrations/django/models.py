"""No Django models: the store's tables are SQLAlchemy's, migrated by Alembic (see apps.py).

This module exists so that Django sends this app the `post_migrate` signal, on which
`manage.py migrate` brings the store's tables up to date as well.
"""
