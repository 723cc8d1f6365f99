"""Plugins for every test folder of the repository."""

# Under CI a test that needs PostgreSQL or kubectl fails where it would skip; the
# fixtures every service's tests share (a database, a loopback gRPC server) come once.
pytest_plugins = ("micro.testing.real_parts", "micro.testing.fixtures")
