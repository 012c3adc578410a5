"""Durable state in SQL (SQLite by default, PostgreSQL for several instances) via SQLAlchemy."""
