"""Helpers for tests that run real parts: a throwaway PostgreSQL server, service processes."""
