"""`ekko.database.health` shows the order of balance_rollups (decision 55): the roll-ups added
since the last sort by wallet, and what the service's re-sorts did."""

from __future__ import annotations

from service.app import Ekko
from service.config import Settings
from tests.client import Client
from tests.factories import Factory


async def test_health_shows_the_rollups_order_and_the_resorts(
    ekko: Ekko, client: Client, make: Factory, settings: Settings
) -> None:
    wallet = await make.create("wallets")
    items = [
        {"wallet_id": wallet["id"], "balance": str(n), "timestamp": f"2026-03-{1 + n:02d}T10:00:00Z"} for n in range(9)
    ]
    await client.ok("ekko.wallet_balances.ingest", {"items": items})
    rollups = (await client.ok("ekko.database.health"))["rollups"]
    # nine days in two or three weeks: 9 hourly, 9 daily and the weekly roll-ups, none sorted yet
    assert rollups["rows"] == rollups["unsorted_rows"] >= 9 + 9 + 2
    assert rollups["resort_after"] == settings.rollup_resort_rows and rollups["sorts"] == 0
    assert rollups["last"] is None

    assert ekko.resort is not None and await ekko.resort.run_once() == "sorted"
    after = (await client.ok("ekko.database.health"))["rollups"]
    assert after == {**rollups, "unsorted_rows": 0, "sorts": 1, "last": "sorted"}
    history = await client.ok(
        "ekko.wallet_balances.history",
        {"wallet_id": wallet["id"], "interval": "1d", "from": "2026-03-01T00:00:00Z", "to": "2026-04-01T00:00:00Z"},
    )
    assert [p["last"] for p in history["points"]] == [f"{n}.000000000000000000" for n in range(9)]
