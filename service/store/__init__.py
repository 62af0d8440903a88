"""DuckDB: connection, writer, DDL migrations, repositories, unit of work, outbox rows."""
