"""Settings: the only place that reads the environment (and `.env`)."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
LOG_FORMATS = ("text", "json")

# Every variable ekko reads, with what it means: `ekko … --help` lists the ones each command
# reads from here, and the README's configuration table says the same.
ENVIRONMENT: dict[str, str] = {
    "NATS_URL": "NATS server (unset: 127.0.0.1:4222, the bundled nats-server started if none listens)",
    "DUCKDB_PATH": "the DuckDB file, default ./data/ekko.db; its directory holds backups",
    "DUCKDB_POOL_SIZE": "read cursors (threads), default 10",
    "MIGRATION_MODE": "migrate the legacy KV buckets into DuckDB before serving, default false",
    "ENABLE_JETSTREAM_SYNC": "relay changes to the KV buckets and EKKO_EVENTS, default true",
    "EKKO_WORKERS_PER_SUBJECT": "requests of one read subject (list, reports, ingest, ...) handled at once, default 8",
    "EKKO_WRITE_WORKERS_PER_SUBJECT": "create/update/delete requests of one subject handled at once, default 256",
    "EKKO_GET_WORKERS_PER_SUBJECT": "plain subscribers per get subject, default 32",
    "EKKO_CACHE_ENTRIES": "records cached per entity for get, default 50000 (0 = off)",
    "EKKO_INFLIGHT_BODY_BYTES": "bytes of large request bodies handled at once before 503, default 268435456",
    "BCRYPT_ROUNDS": "cost of new password hashes, default 12",
    "EKKO_DEPLOYMENT": "name of this deployment, default ekko",
    "EKKO_METRICS_PORT": "serve Prometheus metrics over HTTP on this port (unset: off)",
    "EKKO_SLOW_QUERY_MS": "log queries slower than this at WARNING, default 200 (0 = off)",
    "EKKO_LOG_LEVEL": "DEBUG, INFO (default), WARNING or ERROR",
    "EKKO_LOG_FORMAT": "text (default) or json (one object per line)",
    "NATS_USER": "who ekko connects to NATS as (with NATS_PASSWORD; or user:password in NATS_URL)",
    "NATS_PASSWORD": "the password of NATS_USER",
    "NATS_CREDS": "a NATS credentials file (JWT + nkey seed)",
    "NATS_NKEY_SEED": "a file holding an nkey seed",
    "NATS_TLS_CA": "CA certificate of the NATS server's TLS certificate",
    "NATS_TLS_CERT": "client certificate for TLS (with NATS_TLS_KEY)",
    "NATS_TLS_KEY": "client key for TLS",
    "EKKO_LOGIN_MAX_FAILURES": "failed logins per email within the window before 429, default 10",
    "EKKO_LOGIN_FAILURE_WINDOW": "seconds failed logins are counted over and refused for, default 300",
    "EKKO_BCRYPT_WORKERS": "threads for bcrypt, default half the cores",
    "EKKO_BACKUP_KEEP": "newest backups kept, default 7",
    "EKKO_SUBSCRIPTION_BUFFER_BYTES": "request bytes held per subscription while its workers are busy, default 32 MiB",
    "EKKO_ROLLUP_RESORT_ROWS": "roll-ups added since the last sort by wallet before another, default 245760, 0 off",
    "EKKO_NATS_CONNECT_TIMEOUT": "seconds `ekko run` waits for NATS at start, default 60 (0 = forever)",
    "EKKO_KV_CHECK_INTERVAL": "seconds between checks that every KV bucket exists, default 5",
    "EKKO_BUNDLED_NATS_PORT": "port of the bundled nats-server, default 4222",
    "EKKO_LEASE_TTL": "seconds the writer lease outlives its owner's last heartbeat, default 15",
    "EKKO_EVENTS_MAX_AGE": "seconds EKKO_EVENTS keeps an event, default 604800 (7 days; 0 = no limit)",
    "EKKO_EVENTS_MAX_BYTES": "bytes EKKO_EVENTS holds before dropping its oldest events, default 1073741824"
    " (1 GiB; 0 = no limit)",
    "EKKO_ENDPOINT_STATS": "count requests per subject (metrics, $SRV.STATS), default true; off only to benchmark",
}

# A deployment name is one token of a KV key and of a subject: no dots, spaces or wildcards.
_DEPLOYMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class ConfigError(ValueError):
    """A setting has a value ekko cannot use; the message names the variable."""


def _bool(name: str, raw: str | None, default: bool) -> bool:
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def _int(name: str, raw: str | None, minimum: int, default: int) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _path(raw: str | None) -> Path | None:
    return Path(raw.strip()) if raw is not None and raw.strip() else None


def _float(name: str, raw: str | None, minimum: float, default: float) -> float:
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value >= minimum:  # also refuses nan
        raise ConfigError(f"{name} must be at least {minimum}, got {raw}")
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
    """Requests of one subject other than create/update/delete and get (list, reports, search,
    ingest, ...) handled at once, as tasks of one subscriber in the queue group (decision 48)."""
    write_workers_per_subject: int = 256
    """Create/update/delete requests of one subject handled at once, as tasks of one subscriber.
    Writes wait on the one writer, and group commit needs many of them queued to fill a
    transaction (decision 42: 256 at once took balance creates from ~700/s to ~1,000/s)."""
    get_workers_per_subject: int = 32
    """Subscribers per get subject. A get that misses the cache waits for a read it shares with
    the other misses of the moment (decision 33), so more than the read subjects' 8; plain
    subscribers rather than tasks, which made cached gets 2x slower (decisions 4, 42)."""
    queue_group: str = "ekko"
    cache_entries: int = 50_000
    """Encoded records kept in memory per entity for `get` (0 turns the cache off)."""
    inflight_body_bytes: int = 256 * 1024 * 1024
    """Bytes of requests of 16 KiB or more (body and headers) handled at once; past it such a request is
    refused with 503 `overloaded` before it is decoded (one alone is always taken): hundreds of
    max_payload writes at once would otherwise take gigabytes (decision 49)."""
    subscription_buffer_bytes: int = 32 * 1024 * 1024
    """Bytes of requests nats-py holds for one subscription while its workers are busy; past
    them it drops each further request, answered 503 `overloaded` (decisions 54, 57). Bounds
    what a flood can hold: ~320 subscriptions (a get subject has 32) at nats-py's own 128 MiB
    each could reach tens of GiB. At least max_payload is still taken into an empty buffer."""
    rollup_resort_rows: int = 2 * 122_880
    """Roll-ups appended since balance_rollups was last sorted by wallet (and at least a tenth of
    the sorted ones) before the service sorts it again beside the writer, so a wallet's history
    stays a scan of a few row groups (decision 55). 0: never."""
    bundled_nats_port: int = 4222
    """Port of the bundled nats-server that `ekko run` starts when NATS_URL is unset."""
    nats_connect_timeout: float = 60.0
    """Seconds `ekko run` keeps retrying an unreachable NATS at start (backoff 0.5 s doubling to
    5 s) before it exits with status 4; 0 waits forever. SIGTERM/SIGINT stop it at any moment."""
    kv_check_interval: float = 5.0
    """Seconds between the relay's checks that every KV bucket exists: a bucket deleted at run
    time is recreated and refilled from DuckDB within this, without waiting for a write."""
    events_duplicate_window: float = 600.0
    """Seconds JetStream remembers event ids; relay retries within it are de-duplicated."""
    events_max_age: float = 7 * 24 * 3600.0
    """Seconds EKKO_EVENTS keeps an event (0: no limit). The events are a change feed, not the
    state: DuckDB is, and KV mirrors it. A consumer away for longer reads the KV buckets again
    rather than a week of history; a week outlasts a weekend outage."""
    events_max_bytes: int = 1024**3
    """Bytes EKKO_EVENTS holds before it drops its oldest events (0: no limit), so a write-heavy
    week cannot fill the JetStream disk that KV needs too (~1-2 million events of typical size)."""
    bcrypt_rounds: int = 12
    """Cost of new password hashes (legacy hashes verify whatever their cost)."""
    log_level: str = "INFO"
    log_format: str = "text"
    """`text` (one readable line per record) or `json` (one JSON object per line, for a log shipper)."""
    slow_query_ms: float = 200.0
    """A repository query slower than this is logged at WARNING (0 turns the warning off)."""
    metrics_port: int | None = None
    """Serve the metrics in Prometheus text format over HTTP on this port (unset: no HTTP endpoint)."""
    deployment: str = "ekko"
    """Name of this deployment (one database and its writer), shown in health and metrics."""
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
        if self.get_workers_per_subject < 1:
            raise ConfigError("EKKO_GET_WORKERS_PER_SUBJECT must be at least 1")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("BCRYPT_ROUNDS must be between 4 and 31")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"EKKO_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigError("EKKO_METRICS_PORT must be a TCP port (0-65535)")
        if (self.nats_tls_cert is None) != (self.nats_tls_key is None):
            raise ConfigError("NATS_TLS_CERT and NATS_TLS_KEY go together")
        if self.nats_password is not None and self.nats_user is None:
            raise ConfigError("NATS_PASSWORD needs NATS_USER")
        ways = [self.nats_user is not None, self.nats_creds is not None, self.nats_nkey_seed is not None]
        ways.append("@" in (self.nats_url or ""))
        if sum(ways) > 1:
            raise ConfigError("give one of NATS_USER, NATS_CREDS, NATS_NKEY_SEED or user:password in NATS_URL")
        if not _DEPLOYMENT.match(self.deployment):
            raise ConfigError(f"EKKO_DEPLOYMENT must be 1-64 letters, digits, _ or -, got {self.deployment!r}")
        if self.events_max_age < 0 or self.events_max_bytes < 0:
            raise ConfigError("EKKO_EVENTS_MAX_AGE and EKKO_EVENTS_MAX_BYTES must be 0 (no limit) or more")
        if 0 < self.events_max_age < self.events_duplicate_window:  # JetStream refuses such a stream
            raise ConfigError(
                f"EKKO_EVENTS_MAX_AGE must be 0 or at least the duplicate window ({self.events_duplicate_window:g} s)"
            )
        if self.lease_ttl < 3:
            raise ConfigError("EKKO_LEASE_TTL must be at least 3 (seconds)")

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

    def with_(self, **changes: Any) -> Settings:
        """A copy with these fields changed: replace() refuses unknown names, __post_init__ bad values."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")) -> Settings:
        """Environment variables win over `.env`, which wins over defaults."""
        values: dict[str, str] = {}
        if env_file is not None and env_file.is_file():
            values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        get = values.get
        default = cls()
        return cls(
            nats_url=get("NATS_URL", "").strip() or default.nats_url,
            duckdb_path=Path(path) if (path := get("DUCKDB_PATH", "").strip()) else default.duckdb_path,
            duckdb_pool_size=_int("DUCKDB_POOL_SIZE", get("DUCKDB_POOL_SIZE"), 1, default.duckdb_pool_size),
            migration_mode=_bool("MIGRATION_MODE", get("MIGRATION_MODE"), default.migration_mode),
            enable_jetstream_sync=_bool(
                "ENABLE_JETSTREAM_SYNC", get("ENABLE_JETSTREAM_SYNC"), default.enable_jetstream_sync
            ),
            workers_per_subject=_int(
                "EKKO_WORKERS_PER_SUBJECT", get("EKKO_WORKERS_PER_SUBJECT"), 1, default.workers_per_subject
            ),
            write_workers_per_subject=_int(
                "EKKO_WRITE_WORKERS_PER_SUBJECT",
                get("EKKO_WRITE_WORKERS_PER_SUBJECT"),
                1,
                default.write_workers_per_subject,
            ),
            get_workers_per_subject=_int(
                "EKKO_GET_WORKERS_PER_SUBJECT", get("EKKO_GET_WORKERS_PER_SUBJECT"), 1, default.get_workers_per_subject
            ),
            cache_entries=_int("EKKO_CACHE_ENTRIES", get("EKKO_CACHE_ENTRIES"), 0, default.cache_entries),
            inflight_body_bytes=_int(
                "EKKO_INFLIGHT_BODY_BYTES", get("EKKO_INFLIGHT_BODY_BYTES"), 1, default.inflight_body_bytes
            ),
            subscription_buffer_bytes=_int(
                "EKKO_SUBSCRIPTION_BUFFER_BYTES",
                get("EKKO_SUBSCRIPTION_BUFFER_BYTES"),
                1,
                default.subscription_buffer_bytes,
            ),
            rollup_resort_rows=_int(
                "EKKO_ROLLUP_RESORT_ROWS", get("EKKO_ROLLUP_RESORT_ROWS"), 0, default.rollup_resort_rows
            ),
            bcrypt_rounds=_int("BCRYPT_ROUNDS", get("BCRYPT_ROUNDS"), 4, default.bcrypt_rounds),
            bundled_nats_port=_int(
                "EKKO_BUNDLED_NATS_PORT", get("EKKO_BUNDLED_NATS_PORT"), 1, default.bundled_nats_port
            ),
            nats_connect_timeout=_float(
                "EKKO_NATS_CONNECT_TIMEOUT", get("EKKO_NATS_CONNECT_TIMEOUT"), 0.0, default.nats_connect_timeout
            ),
            kv_check_interval=_float(
                "EKKO_KV_CHECK_INTERVAL", get("EKKO_KV_CHECK_INTERVAL"), 0.1, default.kv_check_interval
            ),
            log_level=raw.upper() if (raw := get("EKKO_LOG_LEVEL")) else default.log_level,
            log_format=raw.strip().lower() if (raw := get("EKKO_LOG_FORMAT", "").strip()) else default.log_format,
            slow_query_ms=_float("EKKO_SLOW_QUERY_MS", get("EKKO_SLOW_QUERY_MS"), 0.0, default.slow_query_ms),
            metrics_port=_int("EKKO_METRICS_PORT", raw, 0, 0)
            if (raw := get("EKKO_METRICS_PORT", "").strip())
            else None,
            deployment=raw if (raw := get("EKKO_DEPLOYMENT", "").strip()) else default.deployment,
            nats_user=get("NATS_USER", "") or default.nats_user,
            nats_password=get("NATS_PASSWORD", "") or default.nats_password,
            nats_creds=_path(get("NATS_CREDS")) or default.nats_creds,
            nats_nkey_seed=_path(get("NATS_NKEY_SEED")) or default.nats_nkey_seed,
            nats_tls_ca=_path(get("NATS_TLS_CA")) or default.nats_tls_ca,
            nats_tls_cert=_path(get("NATS_TLS_CERT")) or default.nats_tls_cert,
            nats_tls_key=_path(get("NATS_TLS_KEY")) or default.nats_tls_key,
            login_max_failures=_int(
                "EKKO_LOGIN_MAX_FAILURES", get("EKKO_LOGIN_MAX_FAILURES"), 1, default.login_max_failures
            ),
            login_failure_window=_float(
                "EKKO_LOGIN_FAILURE_WINDOW", get("EKKO_LOGIN_FAILURE_WINDOW"), 1.0, default.login_failure_window
            ),
            bcrypt_workers=_int("EKKO_BCRYPT_WORKERS", get("EKKO_BCRYPT_WORKERS"), 1, default.bcrypt_workers),
            backup_keep=_int("EKKO_BACKUP_KEEP", get("EKKO_BACKUP_KEEP"), 1, default.backup_keep),
            lease_ttl=_int("EKKO_LEASE_TTL", get("EKKO_LEASE_TTL"), 3, default.lease_ttl),
            events_max_age=_float("EKKO_EVENTS_MAX_AGE", get("EKKO_EVENTS_MAX_AGE"), 0.0, default.events_max_age),
            events_max_bytes=_int("EKKO_EVENTS_MAX_BYTES", get("EKKO_EVENTS_MAX_BYTES"), 0, default.events_max_bytes),
            endpoint_stats=_bool("EKKO_ENDPOINT_STATS", get("EKKO_ENDPOINT_STATS"), default.endpoint_stats),
        )


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
    "ENVIRONMENT",
    "LOCAL_CREDENTIALS_FILE",
    "LOG_FORMATS",
    "NATS_PASSWORD_VARIABLES",
    "ConfigError",
    "Settings",
    "local_credentials_path",
    "read_local_credentials",
    "redacted",
    "with_local_service_user",
]
