"""Settings: the only place that reads the environment (and `.env`)."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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
    nats_user: str | None = None
    nats_password: str | None = None
    """NATS user and password (NATS_USER/NATS_PASSWORD); user:password in NATS_URL works too."""
    nats_creds: Path | None = None
    """A NATS credentials file (JWT + nkey seed)."""
    nats_nkey_seed: Path | None = None
    """A file holding an nkey seed (the user is its public key in the server conf)."""
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    """TLS: the CA that signed the server's certificate; a client certificate and key when the
    server verifies clients."""
    login_max_failures: int = 10
    """Failed logins for one email within login_failure_window before it is refused with 429."""
    login_failure_window: float = 300.0
    """Seconds over which failures are counted, and how long the refusal lasts."""
    bcrypt_workers: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) // 2))
    """Threads that run bcrypt (hashing and login checks), half the cores by default: a login
    flood queues there and leaves the other subjects threads and CPU."""
    backup_keep: int = 7
    """Newest backups kept under <data dir>/backups; older ones are deleted after a backup."""

    def __post_init__(self) -> None:
        if self.duckdb_pool_size < 1:
            raise ConfigError("DUCKDB_POOL_SIZE must be at least 1")
        if self.workers_per_subject < 1:
            raise ConfigError("EKKO_WORKERS_PER_SUBJECT must be at least 1")
        if self.write_workers_per_subject < 1:
            raise ConfigError("EKKO_WRITE_WORKERS_PER_SUBJECT must be at least 1")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ConfigError("NATS_TLS_CERT and NATS_TLS_KEY go together")
        if self.nats_password is not None and self.nats_user is None:
            raise ConfigError("NATS_PASSWORD needs NATS_USER")
        ways = [self.nats_user is not None, self.nats_creds is not None, self.nats_nkey_seed is not None]
        ways.append("@" in (self.nats_url or ""))
        if sum(ways) > 1:
            raise ConfigError("give one of NATS_USER, NATS_CREDS, NATS_NKEY_SEED or user:password in NATS_URL")

    @property
    def nats_credentials_given(self) -> bool:
        """Credentials set explicitly (env or URL), as opposed to the bundled server's generated ones."""
        return any(
            (self.nats_user is not None, self.nats_creds is not None, self.nats_nkey_seed is not None)
        ) or "@" in (self.nats_url or "")

    def tls_context(self) -> ssl.SSLContext | None:
        if self.nats_tls_ca is None and self.nats_tls_cert is None:
            return None
        context = ssl.create_default_context(cafile=str(self.nats_tls_ca) if self.nats_tls_ca is not None else None)
        if self.nats_tls_cert is not None and self.nats_tls_key is not None:
            context.load_cert_chain(str(self.nats_tls_cert), str(self.nats_tls_key))
        return context

    def nats_options(self) -> dict[str, object]:
        """Keyword arguments for nats.connect: who a one-shot connection is and over what.
        user:password in NATS_URL needs nothing here (nats-py reads it from the URL)."""
        options: dict[str, object] = {}
        if self.nats_user is not None:
            options.update(user=self.nats_user, password=self.nats_password or "")
        if self.nats_creds is not None:
            options["user_credentials"] = str(self.nats_creds)
        if self.nats_nkey_seed is not None:
            options["nkeys_seed"] = str(self.nats_nkey_seed)
        if (context := self.tls_context()) is not None:
            options["tls"] = context
        return options

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
        if raw := get("NATS_USER", ""):
            kwargs["nats_user"] = raw
        if raw := get("NATS_PASSWORD", ""):
            kwargs["nats_password"] = raw
        if raw := get("NATS_CREDS", "").strip():
            kwargs["nats_creds"] = Path(raw)
        if raw := get("NATS_NKEY_SEED", "").strip():
            kwargs["nats_nkey_seed"] = Path(raw)
        if raw := get("NATS_TLS_CA", "").strip():
            kwargs["nats_tls_ca"] = Path(raw)
        if raw := get("NATS_TLS_CERT", "").strip():
            kwargs["nats_tls_cert"] = Path(raw)
        if raw := get("NATS_TLS_KEY", "").strip():
            kwargs["nats_tls_key"] = Path(raw)
        if (raw := get("EKKO_LOGIN_MAX_FAILURES")) is not None:
            kwargs["login_max_failures"] = _int("EKKO_LOGIN_MAX_FAILURES", raw, 1)
        if (raw := get("EKKO_LOGIN_FAILURE_WINDOW")) is not None:
            kwargs["login_failure_window"] = float(_int("EKKO_LOGIN_FAILURE_WINDOW", raw, 1))
        if (raw := get("EKKO_BCRYPT_WORKERS")) is not None:
            kwargs["bcrypt_workers"] = _int("EKKO_BCRYPT_WORKERS", raw, 1)
        if (raw := get("EKKO_BACKUP_KEEP")) is not None:
            kwargs["backup_keep"] = _int("EKKO_BACKUP_KEEP", raw, 1)
        return cls(**kwargs)


def redacted(url: str) -> str:
    """A NATS URL fit for logs and messages: a password in it becomes ***."""
    match = re.match(r"^(\w+://)?([^/]*)@", url)  # greedy: userinfo runs to the netloc's last @
    if match is None:
        return url
    user = match.group(2).split(":", 1)[0]
    return f"{match.group(1) or ''}{user}:***@{url[match.end() :]}"


# The bundled nats-server's users (nats-server.conf reads these from its environment).
NATS_PASSWORD_VARIABLES = {
    "ekko": "EKKO_SERVICE_PASSWORD",
    "client": "EKKO_CLIENT_PASSWORD",
    "admin": "EKKO_ADMIN_PASSWORD",
    "reader": "EKKO_READER_PASSWORD",
}
LOCAL_CREDENTIALS_FILE = "nats-credentials.env"


def local_credentials_path(settings: Settings) -> Path:
    """Where `ekko run` keeps the passwords it generated for the bundled nats-server."""
    return settings.data_dir / LOCAL_CREDENTIALS_FILE


def read_local_credentials(settings: Settings) -> dict[str, str]:
    """The generated passwords ({variable: password}); empty when there are none yet."""
    path = local_credentials_path(settings)
    if not path.is_file():
        return {}
    return {k: v for k, v in dotenv_values(path).items() if v and k in NATS_PASSWORD_VARIABLES.values()}


def with_local_service_user(settings: Settings) -> Settings:
    """Without NATS_URL or explicit credentials, ekko talks to the bundled server as its
    service user, with the password `ekko run` generated (unchanged when there is none)."""
    if settings.nats_url is not None or settings.nats_credentials_given:
        return settings
    password = read_local_credentials(settings).get(NATS_PASSWORD_VARIABLES["ekko"])
    return settings if password is None else settings.with_(nats_user="ekko", nats_password=password)


__all__ = [
    "LOCAL_CREDENTIALS_FILE",
    "NATS_PASSWORD_VARIABLES",
    "ConfigError",
    "Settings",
    "local_credentials_path",
    "read_local_credentials",
    "redacted",
    "with_local_service_user",
]
