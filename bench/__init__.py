"""Benchmarks: each prints its figures beside a baseline measured in the same run.

The machine is noisy (2 cores shared by client, nats-server and service), so
read the ratios, not the absolute numbers. Run with `python -m bench`.
"""
