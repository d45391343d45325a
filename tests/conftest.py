"""Shared pytest configuration for the aivpbuild test suite."""
