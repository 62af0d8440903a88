"""Shared fixtures: a real nats-server per test session, a fresh DuckDB file per test.

The server runs with the repository's nats-server.conf, so every test goes through the real
permissions: `ekko` (the service) and `service_nc` connect as the service user, `client` as
the `client` user (admin subjects as `admin`), `admin` as `admin`, `reader` as `reader`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import duckdb
import nats
import pytest
from nats.aio.client import Client as NATS

from ekko_client import EkkoClient
from service.app import Ekko
from service.config import Settings
from service.store.ddl import apply_migrations
from tests.client import Client
from tests.factories import Factory
from tests.natsd import READER_INBOX, NatsServer
from tests.once import built_once

# Fixtures whose tests assert a latency bound (tests/hostile.py: a reply within 1 s): such a
# test runs alone, after the parallel ones (`python3 dev.py test`), marked here so a new test
# using the fixture is too.
SERIAL_FIXTURES = frozenset({"hostile"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERIAL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.serial)


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own (KV bucket names are fixed, so tests must not share one).
    Starting one takes a few tens of milliseconds; the test may stop() and start() it."""
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "ekko.db"


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(db_path: Path) -> Settings:
    """Fast settings for tests: cheap bcrypt, two subscribers per subject."""
    return Settings(
        duckdb_path=db_path,
        bcrypt_rounds=4,
        workers_per_subject=2,
        write_workers_per_subject=4,
        get_workers_per_subject=4,
        duckdb_pool_size=4,
    )


def migrated(path: Path) -> None:
    con = duckdb.connect(str(path))
    apply_migrations(con)
    con.close()


@pytest.fixture
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database at the latest schema version, made once per run: a copy costs less
    than the migrations (~0.2 s of each service start). Tests of migrating or of a missing
    file use `settings`/`db_path` and start the service themselves."""
    return built_once(tmp_path_factory, "migrated.duckdb", migrated)


@pytest.fixture
async def ekko(settings: Settings, nats_server: NatsServer, migrated_db: Path) -> AsyncIterator[Ekko]:
    """The whole service, started against this test's nats-server and DuckDB file (a copy of
    `migrated_db` when the test has not made the file)."""
    if not settings.duckdb_path.exists():
        settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_db, settings.duckdb_path)
    app = Ekko(settings, nats_server.url)
    await app.start()
    yield app
    await app.stop()


@pytest.fixture
async def client(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[Client]:
    """A plain NATS client speaking JSON, like any non-Python caller would: user `client`,
    with `ekko.admin.*` requests sent as user `admin`."""
    nc = await nats.connect(nats_server.url_for("client"))
    admin_nc = await nats.connect(nats_server.url_for("admin"))
    yield Client(nc, admin_nc)
    await nc.close()
    await admin_nc.close()


@pytest.fixture
async def admin(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[Client]:
    """User `admin` alone (every request over its connection)."""
    nc = await nats.connect(nats_server.url_for("admin"))
    yield Client(nc)
    await nc.close()


@pytest.fixture
async def reader(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[Client]:
    """User `reader`: JetStream reads only, on its own inbox prefix (the conf allows no other)."""
    nc = await nats.connect(nats_server.url_for("reader"), inbox_prefix=READER_INBOX)
    yield Client(nc)
    await nc.close()


@pytest.fixture
async def typed(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[EkkoClient]:
    """The typed Python client (ekko_client), as user `client`."""
    client = await EkkoClient.connect(nats_server.url_for("client"))
    yield client
    await client.close()


@pytest.fixture
async def typed_reader(ekko: Ekko, nats_server: NatsServer) -> AsyncIterator[EkkoClient]:
    """The typed client as user `reader`: it may consume EKKO_EVENTS, nothing else."""
    client = await EkkoClient.connect(nats_server.url_for("reader"), inbox_prefix=READER_INBOX)
    yield client
    await client.close()


@pytest.fixture
async def service_nc(nats_server: NatsServer) -> AsyncIterator[NATS]:
    """A connection as the service user: JetStream checks (KV contents, events) in tests."""
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
def make(client: Client) -> Factory:
    """Valid rows of any entity, parents first (tests.factories)."""
    return Factory(client)
