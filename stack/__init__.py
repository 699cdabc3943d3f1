"""The local stack: embedded PostgreSQL, migrations and the `make run` supervisor."""
