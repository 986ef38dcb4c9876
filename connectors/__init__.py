"""Adapters that touch the world: folders, SQLite, the DMP over HTTPS, credentials."""
