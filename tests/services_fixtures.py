"""Fixtures that start real services (PostgreSQL via pgserver, redis-server) for the tests."""
