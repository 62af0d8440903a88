"""The service answers over real NATS from a real DuckDB file."""

from tests.client import Client

WALLET = {"blockchain_symbol": "ETH", "address": "0x" + "ab" * 20, "name": "main", "balance": 1.5}


async def test_a_created_wallet_can_be_read_back_over_nats(client: Client) -> None:
    created = await client.ok("ekko.wallets.create", WALLET)
    fetched = await client.ok("ekko.wallets.get", {"id": created["id"]})
    assert fetched == created
    assert created["balance"] == "1.500000000000000000"
    assert created["version"] == 1
