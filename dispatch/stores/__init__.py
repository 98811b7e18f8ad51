"""Store ports (``ports``) and their backends side by side: ``memory`` now,
PostgreSQL and Redis next to it, all held to one contract test suite."""
