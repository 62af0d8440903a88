"""Forward-only schema migrations. `schema_version` records which ran.

Foreign keys are enforced by the service (under the single writer), not by
DuckDB: DuckDB cannot delete a parent and its children in one transaction
(docs/decisions.md), and the legacy data holds orphans that must be reported,
not crash an import.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import duckdb

from service.model.registry import ENTITY_ORDER
from service.store.sql import quote, schema_version

log = logging.getLogger(__name__)

_COMMON = """
    id VARCHAR PRIMARY KEY,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL"""

V1 = f"""
CREATE TABLE users ({_COMMON},
    email VARCHAR NOT NULL,
    full_name VARCHAR,
    role VARCHAR NOT NULL,
    is_active BOOLEAN NOT NULL,
    password_hash VARCHAR NOT NULL
);
CREATE INDEX users_email ON users (email);

CREATE TABLE wallets ({_COMMON},
    blockchain_symbol VARCHAR NOT NULL,
    address VARCHAR NOT NULL,
    name VARCHAR,
    balance DECIMAL(24,8) NOT NULL,
    status VARCHAR NOT NULL
);
CREATE INDEX wallets_chain_address ON wallets (blockchain_symbol, address);

CREATE TABLE alerts ({_COMMON},
    type VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    time VARCHAR,
    status VARCHAR NOT NULL,
    icon VARCHAR,
    priority VARCHAR NOT NULL,
    related_wallet_id VARCHAR,
    query VARCHAR,
    job_spec JSON,
    notifications_enabled BOOLEAN NOT NULL
);
CREATE INDEX alerts_wallet ON alerts (related_wallet_id);

CREATE TABLE wallet_balances ({_COMMON},
    wallet_id VARCHAR NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    balance DECIMAL(24,8) NOT NULL,
    token_price DECIMAL(24,8),
    fiat_value DECIMAL(24,8)
);
CREATE INDEX wallet_balances_wallet_time ON wallet_balances (wallet_id, timestamp);

CREATE TABLE alert_rules ({_COMMON},
    name VARCHAR NOT NULL,
    description VARCHAR,
    condition JSON NOT NULL,
    action JSON NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_by VARCHAR
);
CREATE INDEX alert_rules_created_by ON alert_rules (created_by);

CREATE TABLE workflows ({_COMMON},
    name VARCHAR NOT NULL,
    description VARCHAR,
    enabled BOOLEAN NOT NULL,
    steps JSON NOT NULL,
    created_by VARCHAR
);
CREATE INDEX workflows_created_by ON workflows (created_by);

CREATE TABLE workflow_executions ({_COMMON},
    workflow_id VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    result JSON,
    error_message VARCHAR
);
CREATE INDEX workflow_executions_workflow ON workflow_executions (workflow_id);

CREATE TABLE agents ({_COMMON},
    name VARCHAR NOT NULL,
    type VARCHAR NOT NULL,
    config JSON NOT NULL,
    status VARCHAR NOT NULL,
    last_run TIMESTAMP,
    created_by VARCHAR,
    max_budget DECIMAL(24,8)
);
CREATE INDEX agents_created_by ON agents (created_by);

-- Transactional outbox: written in the same transaction as the change it
-- describes, drained in seq order by service.sync.relay.
CREATE SEQUENCE outbox_seq START 1;
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY DEFAULT nextval('outbox_seq'),
    event_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    data BLOB
);
"""

# Outbox entries the relay can never publish (too large for max_payload, a key KV refuses),
# moved here with the reason so the relay goes on with the rest (docs/decisions.md).
# `ekko sync repair` rewrites KV from DuckDB and empties it.
V2 = """
CREATE TABLE outbox_dead_letter (
    seq BIGINT PRIMARY KEY,
    event_id VARCHAR NOT NULL,
    entity VARCHAR NOT NULL,
    entity_id VARCHAR NOT NULL,
    action VARCHAR NOT NULL,
    version BIGINT NOT NULL,
    occurred_at TIMESTAMP NOT NULL,
    data BLOB,
    error VARCHAR NOT NULL,
    failed_at TIMESTAMP NOT NULL
);
"""

# The latest integrity check (a migration's validation), written by whichever process ran it
# (`ekko migrate` offline or the service), so `ekko.database.health` shows it after either.
V3 = """
CREATE TABLE integrity_log (
    checked_at TIMESTAMP NOT NULL,
    ok BOOLEAN NOT NULL,
    result JSON NOT NULL
);
"""

# The event envelope: the record before the change, the write (transaction) it belongs to and
# the caller's correlation id, in the outbox and its dead letters alike. Rows queued before
# have NULL there and relay as a transaction of their own (service.store.outbox.Change).
V4 = "".join(
    f"""
ALTER TABLE {table} ADD COLUMN before_data BLOB;
ALTER TABLE {table} ADD COLUMN tx_id VARCHAR;
ALTER TABLE {table} ADD COLUMN tx_index INTEGER;
ALTER TABLE {table} ADD COLUMN tx_count INTEGER;
ALTER TABLE {table} ADD COLUMN correlation_id VARCHAR;
"""
    for table in ("outbox", "outbox_dead_letter")
)

# Each unique key's normalized form in a column of its own under a UNIQUE index (the same
# as `python -m service.store.tables` derives): the check is one index lookup instead of a
# `lower(col) = lower(?)` scan, and DuckDB refuses a duplicate. The index is made while the
# column is all NULL, then filled: DuckDB cannot create an index after an UPDATE in the same
# transaction (and restore runs this inside its own). Existing rows are filled;
# where rows already share a key (made outside the service: it always refused them), the
# oldest (created_at, then id) keeps it and the others keep NULL: they stay readable and
# loggable-in as before, and a new row with that key is still refused (docs/decisions.md).
V5 = """
ALTER TABLE users ADD COLUMN unique_email VARCHAR;
CREATE UNIQUE INDEX users_unique_email ON users (unique_email);
UPDATE users SET unique_email = oldest.key FROM (
    SELECT id, key FROM (SELECT id, created_at, lower(email) AS key FROM users)
    QUALIFY row_number() OVER (PARTITION BY key ORDER BY created_at, id) = 1
) AS oldest WHERE users.id = oldest.id;

ALTER TABLE wallets ADD COLUMN unique_blockchain_symbol_address VARCHAR;
CREATE UNIQUE INDEX wallets_unique_blockchain_symbol_address ON wallets (unique_blockchain_symbol_address);
UPDATE wallets SET unique_blockchain_symbol_address = oldest.key FROM (
    SELECT id, key FROM (
        SELECT id, created_at,
            length(lower(blockchain_symbol)) || ':' || lower(blockchain_symbol) || lower(address) AS key
        FROM wallets
    )
    QUALIFY row_number() OVER (PARTITION BY key ORDER BY created_at, id) = 1
) AS oldest WHERE wallets.id = oldest.id;
"""

# DuckDB scans only single-column ART indexes (a compound one is never used to find rows):
# the (wallet_id, timestamp) index cost every insert and served no query. A wallet's
# balances are found by its own index (small wallets) or by time (docs/decisions.md).
V6 = """
DROP INDEX wallet_balances_wallet_time;
CREATE INDEX wallet_balances_wallet_id ON wallet_balances (wallet_id);
"""

# Exact on-chain amounts (18 decimals, 20 integer digits) and the derived state the balance
# questions read instead of the whole history (docs/decisions.md, "Balances"). DuckDB cannot
# change a column's type while an index covers the table: each index is dropped and remade.
# The writer deletes and re-inserts a derived row's key, several times in one group-commit
# transaction; DuckDB 2.0 takes that under a primary key (checked in
# tests/unit/test_balance_migration.py), so the keys are declared and enforced.
V7 = """
DROP INDEX wallet_balances_wallet_id;
ALTER TABLE wallet_balances ALTER balance TYPE DECIMAL(38,18);
ALTER TABLE wallet_balances ALTER token_price TYPE DECIMAL(38,18);
ALTER TABLE wallet_balances ALTER fiat_value TYPE DECIMAL(38,8);
CREATE INDEX wallet_balances_wallet_id ON wallet_balances (wallet_id);
DROP INDEX wallets_chain_address;
DROP INDEX wallets_unique_blockchain_symbol_address;
ALTER TABLE wallets ALTER balance TYPE DECIMAL(38,18);
CREATE INDEX wallets_chain_address ON wallets (blockchain_symbol, address);
CREATE UNIQUE INDEX wallets_unique_blockchain_symbol_address ON wallets (unique_blockchain_symbol_address);

-- Per wallet, per interval ('1h', '1d', '1w'; start = date_trunc of hour, day, ISO week):
-- first/last balance by (timestamp, id), min, max, count, the last row's fiat value.
CREATE TABLE balance_rollups (
    wallet_id VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    start TIMESTAMP NOT NULL,
    first DECIMAL(38,18) NOT NULL,
    last DECIMAL(38,18) NOT NULL,
    min DECIMAL(38,18) NOT NULL,
    max DECIMAL(38,18) NOT NULL,
    count BIGINT NOT NULL,
    last_fiat_value DECIMAL(38,8),
    -- (timestamp, id) of the first and last row: a new row is merged without reading the others.
    first_at TIMESTAMP NOT NULL,
    first_id VARCHAR NOT NULL,
    last_at TIMESTAMP NOT NULL,
    last_id VARCHAR NOT NULL,
    -- One row per key; its index serves history and at (one wallet's intervals of one
    -- size, by start) and the writer's refresh of the keys a write touched.
    PRIMARY KEY (wallet_id, interval, start)
);

-- Each wallet's newest wallet_balances row (by timestamp, then id), whole.
CREATE TABLE balance_latest (
    id VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    version BIGINT NOT NULL,
    wallet_id VARCHAR NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    balance DECIMAL(38,18) NOT NULL,
    token_price DECIMAL(38,18),
    fiat_value DECIMAL(38,8),
    -- One row per wallet; its index serves latest with wallet_ids and the writer replacing
    -- a wallet's row.
    PRIMARY KEY (wallet_id)
);

-- The rows an existing database holds, as service.store.balances.rebuild derives them.
INSERT INTO balance_rollups SELECT wallet_id, '1h', date_trunc('hour', timestamp) AS s,
    arg_min(balance, (timestamp, id)), arg_max(balance, (timestamp, id)), min(balance), max(balance),
    count(*), arg_max_null(fiat_value, (timestamp, id)),
    min(timestamp), arg_min(id, (timestamp, id)), max(timestamp), arg_max(id, (timestamp, id))
    FROM wallet_balances GROUP BY wallet_id, s ORDER BY wallet_id, s;
INSERT INTO balance_rollups SELECT wallet_id, '1d', date_trunc('day', timestamp) AS s,
    arg_min(balance, (timestamp, id)), arg_max(balance, (timestamp, id)), min(balance), max(balance),
    count(*), arg_max_null(fiat_value, (timestamp, id)),
    min(timestamp), arg_min(id, (timestamp, id)), max(timestamp), arg_max(id, (timestamp, id))
    FROM wallet_balances GROUP BY wallet_id, s ORDER BY wallet_id, s;
INSERT INTO balance_rollups SELECT wallet_id, '1w', date_trunc('week', timestamp) AS s,
    arg_min(balance, (timestamp, id)), arg_max(balance, (timestamp, id)), min(balance), max(balance),
    count(*), arg_max_null(fiat_value, (timestamp, id)),
    min(timestamp), arg_min(id, (timestamp, id)), max(timestamp), arg_max(id, (timestamp, id))
    FROM wallet_balances GROUP BY wallet_id, s ORDER BY wallet_id, s;
INSERT INTO balance_latest SELECT * FROM wallet_balances WHERE id IN (
    SELECT arg_max(last_id, start) FROM balance_rollups WHERE interval = '1w' GROUP BY wallet_id);
"""

# One outbox entry may stand for the creates of a batch write (ekko.wallet_balances.ingest):
# `changes` is how many, its data the JSON array of their records; NULL is one change as
# before. Dead letters keep the part of such an entry that could not be published alike.
V8 = "".join(
    f"""
ALTER TABLE {table} ADD COLUMN changes INTEGER;
"""
    for table in ("outbox", "outbox_dead_letter")
)

V9 = """
-- What ekko.search reads (service.store.search): one row per non-null searchable field of
-- each wallet, alert, user, alert rule, workflow and agent, kept by the writer in the
-- transaction that changes the row. No index: a search scans it (the trigram mask first),
-- and the writer's delete of a group's rows is one scan per group.
CREATE TABLE search_terms (
    entity VARCHAR NOT NULL,
    id VARCHAR NOT NULL,
    text VARCHAR NOT NULL,   -- the field, lower-cased by DuckDB
    grams UBIGINT NOT NULL,  -- bit (code point hash % 63) of each trigram of text
    title VARCHAR NOT NULL   -- the hit's title, cut to 200 characters
);

-- The rows an existing database holds, as service.store.search.rebuild derives them.
INSERT INTO search_terms SELECT entity, id, t,
    coalesce(list_aggregate(list_transform(range(1, length(t) - 1), lambda i: 1::UBIGINT << ((
        unicode(substr(t, i + 0, 1)) * 1031 + unicode(substr(t, i + 1, 1)) * 37 + unicode(substr(t, i + 2, 1))
    ) % 63)::INTEGER), 'bit_or'), 0::UBIGINT),
    left(title, 200)
FROM (
    SELECT 'wallets' AS entity, id, lower(name) AS t, coalesce(name, address) AS title
        FROM wallets WHERE name IS NOT NULL
    UNION ALL SELECT 'wallets' AS entity, id, lower(address) AS t, coalesce(name, address) AS title
        FROM wallets WHERE address IS NOT NULL
    UNION ALL SELECT 'alerts' AS entity, id, lower(message) AS t, message AS title
        FROM alerts WHERE message IS NOT NULL
    UNION ALL SELECT 'alerts' AS entity, id, lower(type) AS t, message AS title
        FROM alerts WHERE type IS NOT NULL
    UNION ALL SELECT 'users' AS entity, id, lower(email) AS t, coalesce(full_name, email) AS title
        FROM users WHERE email IS NOT NULL
    UNION ALL SELECT 'users' AS entity, id, lower(full_name) AS t, coalesce(full_name, email) AS title
        FROM users WHERE full_name IS NOT NULL
    UNION ALL SELECT 'alert_rules' AS entity, id, lower(name) AS t, name AS title
        FROM alert_rules WHERE name IS NOT NULL
    UNION ALL SELECT 'alert_rules' AS entity, id, lower(description) AS t, name AS title
        FROM alert_rules WHERE description IS NOT NULL
    UNION ALL SELECT 'workflows' AS entity, id, lower(name) AS t, name AS title
        FROM workflows WHERE name IS NOT NULL
    UNION ALL SELECT 'workflows' AS entity, id, lower(description) AS t, name AS title
        FROM workflows WHERE description IS NOT NULL
    UNION ALL SELECT 'agents' AS entity, id, lower(name) AS t, name AS title
        FROM agents WHERE name IS NOT NULL
    UNION ALL SELECT 'agents' AS entity, id, lower(type) AS t, name AS title
        FROM agents WHERE type IS NOT NULL
);
"""

# portfolio_changes from the roll-ups and the wallets' chains: migration 10 runs it, and so does
# service.store.portfolio.rebuild (after a legacy migration or a restore).
PORTFOLIO_FILL = """
INSERT INTO portfolio_changes SELECT * FROM (
    SELECT blockchain_symbol, interval, start,
        units + fraction // 100000000 - CASE WHEN fraction % 100000000 < 0 THEN 1 ELSE 0 END AS units,
        fraction % 100000000 + CASE WHEN fraction % 100000000 < 0 THEN 100000000 ELSE 0 END AS fraction
    FROM (
        SELECT w.blockchain_symbol, d.interval, d.start, sum(d.du) AS units, sum(d.df) AS fraction
        FROM (SELECT wallet_id, interval, start, u - coalesce(lag(u) OVER w, 0) AS du,
                f - coalesce(lag(f) OVER w, 0) AS df
            FROM (SELECT r.wallet_id, r.interval, r.start, trunc(coalesce(r.last_fiat_value, 0))::HUGEINT AS u,
                ((coalesce(r.last_fiat_value, 0) - trunc(coalesce(r.last_fiat_value, 0))) * 100000000)::BIGINT AS f
                FROM balance_rollups r)
            WINDOW w AS (PARTITION BY wallet_id, interval ORDER BY start)) d
        JOIN wallets w ON w.id = d.wallet_id
        GROUP BY w.blockchain_symbol, d.interval, d.start))
WHERE units <> 0 OR fraction <> 0
ORDER BY interval, start, blockchain_symbol
"""

# Per chain and interval, the change of the summed carried-forward fiat value (service.store.portfolio):
# portfolio_history reads a few hundred of these rows instead of every roll-up before `to`.
V10 = f"""
CREATE TABLE portfolio_changes (
    blockchain_symbol VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    start TIMESTAMP NOT NULL,
    -- The change times 10^8 = units * 10^8 + fraction, 0 <= fraction < 10^8: exact where a
    -- DECIMAL(38,8) sum of many wallets' values would overflow.
    units HUGEINT NOT NULL,
    fraction BIGINT NOT NULL,
    -- One row per key: the writer adds its differences with INSERT ... ON CONFLICT DO UPDATE.
    -- The report's range reads (one interval size, starts in a range) go by the zone maps of
    -- rows inserted in (interval, start) order and appended in time order, not this index.
    PRIMARY KEY (blockchain_symbol, interval, start)
);

-- The rows an existing database holds, as service.store.portfolio.rebuild derives them: per
-- wallet roll-up, its last fiat value (null as 0) minus the one of the wallet's previous
-- roll-up of that size, split in whole units and eighth decimals, summed per chain and start.
{PORTFOLIO_FILL.strip()};
"""

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial schema: eight entities and the outbox", V1),
    (2, "outbox dead letters: entries the relay cannot publish", V2),
    (3, "integrity_log: the latest integrity check, for health", V3),
    (4, "event envelope: before image, transaction and correlation ids in the outbox", V4),
    (5, "unique keys in indexed columns of their own", V5),
    (6, "wallet_balances: a wallet_id index DuckDB can scan, not (wallet_id, timestamp)", V6),
    (7, "18-decimal balances; balance roll-ups and latest balance per wallet", V7),
    (8, "outbox entries that stand for a batch of creates", V8),
    (9, "search_terms: the searchable fields, lower-cased, with a trigram mask", V9),
    (10, "portfolio_changes: per-chain changes of the portfolio's fiat value", V10),
]

# Tables derived from others (rebuilt by service.store.balances.rebuild, service.store.portfolio.rebuild
# and service.store.search.rebuild); dropped with them.
DERIVED_TABLES = ("balance_rollups", "balance_latest", "portfolio_changes", "search_terms")

LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
    )
    return schema_version(con)


def _apply_one(con: duckdb.DuckDBPyConnection, number: int, description: str, sql: str) -> None:
    con.execute(sql)
    con.execute(
        "INSERT INTO schema_version VALUES (?, ?, ?)",
        [number, description, datetime.now(UTC).replace(tzinfo=None)],
    )


def apply_migrations(con: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to LATEST_VERSION, one transaction per migration. Returns the version."""
    version = current_version(con)
    for number, description, sql in MIGRATIONS:
        if number <= version:
            continue
        con.execute("BEGIN")
        try:
            _apply_one(con, number, description, sql)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        log.info("schema migrated to version %d (%s)", number, description)
        version = number
    return version


def apply_pending(cur: duckdb.DuckDBPyConnection) -> int:
    """Bring the schema to LATEST_VERSION inside the caller's transaction (restore and reset
    drop, recreate and refill in one transaction). Returns the version."""
    version = current_version(cur)
    for number, description, sql in MIGRATIONS:
        if number > version:
            _apply_one(cur, number, description, sql)
            version = number
    return version


def drop_all(con: duckdb.DuckDBPyConnection) -> None:
    """Drop every ekko table (for `ekko db reset`); apply_migrations recreates them."""
    for table in (
        *DERIVED_TABLES,
        "balance_rollups_sorted",  # a re-sort's copy a crash left (service.store.rollup_resort)
        *reversed(ENTITY_ORDER),
        "outbox",
        "outbox_dead_letter",
        "integrity_log",
        "schema_version",
    ):
        con.execute(f"DROP TABLE IF EXISTS {quote(table)}")
    con.execute("DROP SEQUENCE IF EXISTS outbox_seq")
