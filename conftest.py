"""Plugins for every test folder of the repository."""

# Under CI a test that needs PostgreSQL or kubectl fails where it would skip.
pytest_plugins = ("micro.testing.real_parts",)
