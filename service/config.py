"""Settings: the only place that reads the environment (and `.env`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from dotenv import dotenv_values

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# A deployment name is one token of a KV key and of a subject: no dots, spaces or wildcards.
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConfigError(ValueError):
    """A setting has a value ekko cannot use; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, raw: str, minimum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    nats_url: str | None = None
    """NATS server to use. None: use 127.0.0.1:4222, starting the bundled nats-server if nothing listens."""
    duckdb_path: Path = Path("data/ekko.db")
    """The DuckDB file; its directory is the data directory (backups, bundled JetStream store)."""
    duckdb_pool_size: int = 10
    """Read cursors (and threads) in the pool. Writes go through one writer cursor."""
    migration_mode: bool = False
    """Migrate legacy KV buckets into DuckDB before serving (`ekko run`)."""
    enable_jetstream_sync: bool = True
    """Fill the outbox and relay changes to KV buckets and the EKKO_EVENTS stream."""
    subject_prefix: str = "ekko"
    """First token of every subject; tests use a unique one per test."""
    workers_per_subject: int = 8
    """Subscribers per read subject (get, list, ...) in one queue group: how many requests of one
    subject run at once."""
    write_workers_per_subject: int = 32
    """The same for create/update/delete. Writes wait on the one writer; group commit needs many
    of them queued to fill a transaction (8 capped creates at ~830/s, 32 sustained 1,000/s)."""
    queue_group: str = "ekko"
    cache_entries: int = 50_000
    """Encoded records kept in memory per entity for `get` (0 turns the cache off)."""
    bundled_nats_port: int = 4222
    events_duplicate_window: float = 600.0
    """Seconds JetStream remembers event ids; relay retries within it are de-duplicated."""
    bcrypt_rounds: int = 12
    """Cost of new password hashes (legacy hashes verify whatever their cost)."""
    log_level: str = "INFO"
    deployment: str = "ekko"
    """Name of this deployment: one database and the one process that writes it. The writer
    lease (a KV key in `ekko_leases`) is per deployment name."""
    lease_ttl: int = 15
    """Seconds the writer lease outlives its owner's last heartbeat (heartbeats every third of it)."""
    endpoint_stats: bool = True
    """Count requests per endpoint for `$SRV.STATS`; off only to measure what counting costs."""

    def __post_init__(self) -> None:
        # Absolute once, here: logs, health, the lease and $SRV.INFO name the same file whatever
        # the working directory (a relative path from another directory is another database).
        object.__setattr__(self, "duckdb_path", Path(self.duckdb_path).expanduser().absolute())
        if self.duckdb_pool_size < 1:
            raise ConfigError("DUCKDB_POOL_SIZE must be at least 1")
        if self.workers_per_subject < 1:
            raise ConfigError("EKKO_WORKERS_PER_SUBJECT must be at least 1")
        if self.write_workers_per_subject < 1:
            raise ConfigError("EKKO_WRITE_WORKERS_PER_SUBJECT must be at least 1")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
        if not _DEPLOYMENT.match(self.deployment):
            raise ConfigError(f"EKKO_DEPLOYMENT must be 1-64 letters, digits, _ or -, got {self.deployment!r}")
        if self.lease_ttl < 3:
            raise ConfigError("EKKO_LEASE_TTL must be at least 3 (seconds)")

    @property
    def data_dir(self) -> Path:
        return self.duckdb_path.parent

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
        """Environment variables win over `.env`, which wins over defaults."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        get = values.get
        kwargs: dict[str, object] = {}
        if url := get("NATS_URL", "").strip():
            kwargs["nats_url"] = url
        if path := get("DUCKDB_PATH", "").strip():
            kwargs["duckdb_path"] = Path(path)
        if (raw := get("DUCKDB_POOL_SIZE")) is not None:
            kwargs["duckdb_pool_size"] = _int("DUCKDB_POOL_SIZE", raw, 1)
        if (raw := get("MIGRATION_MODE")) is not None:
            kwargs["migration_mode"] = _bool("MIGRATION_MODE", raw)
        if (raw := get("ENABLE_JETSTREAM_SYNC")) is not None:
            kwargs["enable_jetstream_sync"] = _bool("ENABLE_JETSTREAM_SYNC", raw)
        if (raw := get("EKKO_WORKERS_PER_SUBJECT")) is not None:
            kwargs["workers_per_subject"] = _int("EKKO_WORKERS_PER_SUBJECT", raw, 1)
        if (raw := get("EKKO_WRITE_WORKERS_PER_SUBJECT")) is not None:
            kwargs["write_workers_per_subject"] = _int("EKKO_WRITE_WORKERS_PER_SUBJECT", raw, 1)
        if (raw := get("EKKO_CACHE_ENTRIES")) is not None:
            kwargs["cache_entries"] = _int("EKKO_CACHE_ENTRIES", raw, 0)
        if (raw := get("BCRYPT_ROUNDS")) is not None:
            kwargs["bcrypt_rounds"] = _int("BCRYPT_ROUNDS", raw, 4)
        if raw := get("EKKO_LOG_LEVEL"):
            kwargs["log_level"] = raw.upper()
        if raw := get("EKKO_DEPLOYMENT", "").strip():
            kwargs["deployment"] = raw
        if (raw := get("EKKO_LEASE_TTL")) is not None:
            kwargs["lease_ttl"] = _int("EKKO_LEASE_TTL", raw, 3)
        if (raw := get("EKKO_ENDPOINT_STATS")) is not None:
            kwargs["endpoint_stats"] = _bool("EKKO_ENDPOINT_STATS", raw)
        return cls(**kwargs)


__all__ = ["ConfigError", "Settings"]
