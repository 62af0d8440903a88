"""Entities, columns, values and rules: no I/O."""
