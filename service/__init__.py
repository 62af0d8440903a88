"""The ekko application: config, database, entity registry, services, sync and CLI."""
