"""Thin FastStream routers: decode -> call the service -> encode. No SQL here."""
