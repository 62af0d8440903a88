"""`EkkoClient`: every subject of ekko as a typed async call."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar, overload

import msgspec
import nats
from nats.aio.client import Client

from .balances import WalletBalances
from .calls import Calls, Reports
from .entities import Entity, Users
from .events import Events
from .schema.agents import Agent, AgentCreate, AgentUpdate
from .schema.alert_rules import AlertRule, AlertRuleCreate, AlertRuleUpdate
from .schema.alerts import Alert, AlertCreate, AlertUpdate
from .schema.reports import SearchReply, SearchRequest, SearchType
from .schema.users import User, UserCreate, UserUpdate
from .schema.wallet_balances import WalletBalance, WalletBalanceCreate, WalletBalanceUpdate
from .schema.wallets import Wallet, WalletCreate, WalletUpdate
from .schema.workflow_executions import WorkflowExecution, WorkflowExecutionCreate, WorkflowExecutionUpdate
from .schema.workflows import Workflow, WorkflowCreate, WorkflowUpdate
from .transport import RetryPolicy, Transport

T = TypeVar("T")
JsonObject = dict[str, Any]


class Admin:
    """`ekko.admin.*`: only the `admin` user may send these. Replies are plain JSON objects."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        # Only create and update exist under ekko.admin.users (they may set role and is_active).
        self.users = Entity(transport, "admin.users", User, UserCreate, UserUpdate)

    async def _ask(self, name: str, body: Any = None, *, idempotent: bool) -> JsonObject:
        reply: JsonObject = msgspec.json.decode(
            await self._transport.request(f"admin.{name}", body, idempotent=idempotent)
        )
        return reply

    async def sync_verify(self) -> JsonObject:
        return await self._ask("sync.verify", idempotent=True)

    async def sync_repair(self) -> JsonObject:
        return await self._ask("sync.repair", idempotent=False)

    async def migration_check(self) -> JsonObject:
        return await self._ask("migration.check", idempotent=True)

    async def migration_validate(self) -> JsonObject:
        return await self._ask("migration.validate", idempotent=True)

    async def backup(self) -> JsonObject:
        return await self._ask("backup", idempotent=False)


class EkkoClient:
    """Typed calls over one NATS connection.

        client = await EkkoClient.connect("nats://127.0.0.1:4222", user="client", password=...)
        wallet = await client.wallets.create(blockchain_symbol="ETH", address="0x...")
        async for w in client.wallets.iter(filters={"status": "active"}):
            ...

    Or wrap a connection you already have: `EkkoClient(nc)` (it is not closed by `close()`).
    `timeout` is per attempt; see `RetryPolicy` for what is retried."""

    def __init__(
        self,
        nc: Client,
        *,
        prefix: str = "ekko",
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        owns_connection: bool = False,
        transport: Transport | None = None,
    ) -> None:
        self.nc = nc
        self._owns_connection = owns_connection
        self._transport = transport or Transport(nc, prefix, timeout, retry or RetryPolicy())
        t = self._transport
        self.users = Users(t, "users", User, UserCreate, UserUpdate)
        self.wallets = Entity(t, "wallets", Wallet, WalletCreate, WalletUpdate)
        self.alerts = Entity(t, "alerts", Alert, AlertCreate, AlertUpdate)
        self.wallet_balances = WalletBalances(
            t, "wallet_balances", WalletBalance, WalletBalanceCreate, WalletBalanceUpdate
        )
        self.alert_rules = Entity(t, "alert_rules", AlertRule, AlertRuleCreate, AlertRuleUpdate)
        self.workflows = Entity(t, "workflows", Workflow, WorkflowCreate, WorkflowUpdate)
        self.workflow_executions = Entity(
            t, "workflow_executions", WorkflowExecution, WorkflowExecutionCreate, WorkflowExecutionUpdate
        )
        self.agents = Entity(t, "agents", Agent, AgentCreate, AgentUpdate)
        self.admin = Admin(t)
        self.reports = Reports(t)
        self._calls = Calls(t)
        self.events = Events(nc, t.prefix)

    @classmethod
    async def connect(
        cls,
        url: str = "nats://127.0.0.1:4222",
        *,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        prefix: str = "ekko",
        **options: Any,
    ) -> EkkoClient:
        """Connect to NATS (`options` go to `nats.connect`, e.g. `inbox_prefix`, `tls`)."""
        nc = await nats.connect(url, user=user, password=password, **options)
        return cls(nc, prefix=prefix, timeout=timeout, retry=RetryPolicy(retries=retries), owns_connection=True)

    def with_headers(self, headers: dict[str, str]) -> EkkoClient:
        """A client on the same connection whose requests also carry `headers` (e.g. a
        correlation id). The original is unchanged."""
        return EkkoClient(self.nc, transport=self._transport.with_headers(headers))

    @overload
    async def request(self, name: str, body: Any = None, *, idempotent: bool = False) -> Any: ...
    @overload
    async def request(self, name: str, body: Any = None, *, reply: type[T], idempotent: bool = False) -> T: ...
    async def request(self, name: str, body: Any = None, *, reply: Any = Any, idempotent: bool = False) -> Any:
        """Any subject, `<prefix>.<name>`, with the reply decoded into `reply` (plain JSON by
        default). Error replies raise as in the typed calls. For subjects without a typed call."""
        data = await self._transport.request(name, body, idempotent=idempotent)
        return msgspec.json.decode(data, type=reply)

    async def search(self, q: str, *, types: Sequence[SearchType] | None = None, limit: int = 20) -> SearchReply:
        """`ekko.search`: records whose text fields hold `q`, best hits first."""
        request = SearchRequest(q, types=None if types is None else list(types), limit=limit)
        return await self._calls.call("search", request, SearchReply)

    async def health(self) -> JsonObject:
        """`ekko.health`: status (healthy, degraded, unhealthy), NATS, JetStream, database."""
        reply: JsonObject = await self.request("health", idempotent=True)
        return reply

    async def database_health(self) -> JsonObject:
        reply: JsonObject = await self.request("database.health", idempotent=True)
        return reply

    async def metrics(self) -> JsonObject:
        reply: JsonObject = await self.request("metrics", idempotent=True)
        return reply

    async def close(self) -> None:
        """Close the connection if `connect` made it."""
        if self._owns_connection:
            await self.nc.drain()

    async def __aenter__(self) -> EkkoClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
