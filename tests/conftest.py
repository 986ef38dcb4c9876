"""Shared pytest fixtures for the dmp-bridge test suite."""
