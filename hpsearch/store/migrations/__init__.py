"""Alembic migrations of the hpsearch store (a package so that wheels ship them)."""
