"""The composition root hands every router the same Serving (handlers.crud): the subject
prefix, the queue group and the subscriber counts of the settings reach each subject."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from handlers.crud import Serving, no_body, subscribe
from handlers.stats import Endpoints
from service.app import Ekko
from service.config import Settings
from service.model.registry import ENTITIES
from service.usecases.metrics import RequestMetrics

SETTINGS = Settings(
    subject_prefix="acme",
    workers_per_subject=3,
    write_workers_per_subject=5,
    get_workers_per_subject=7,
    queue_group="q",
)


@pytest.fixture
def app() -> Iterator[Ekko]:
    built = Ekko(SETTINGS, "nats://127.0.0.1:1")  # built, never started
    yield built
    built.bcrypt_pool.shutdown()


def subscribers(app: Ekko) -> Counter[tuple[str, str]]:
    """(subject, queue group) -> how many requests of it run at once: the plain subscribers that
    take it, plus the tasks (FastStream `max_workers`) of the one that runs them concurrently."""
    counts: Counter[tuple[str, str]] = Counter()
    for sub in app.broker.subscribers:
        counts[(sub._resolved_subject_string, sub.queue)] += getattr(sub, "max_workers", 1)
    return counts


def concurrent(app: Ekko) -> set[str]:
    """Subjects served by one subscriber running several requests as tasks."""
    return {sub._resolved_subject_string for sub in app.broker.subscribers if hasattr(sub, "max_workers")}


def test_every_entity_subject_has_the_subscribers_its_kind_of_work_gets(app: Ekko) -> None:
    counts, tasks = subscribers(app), concurrent(app)
    for name in ENTITIES:
        # Writes wait for their group: write_workers tasks of one subscriber each.
        for action in ("create", "update", "delete"):
            assert counts[(f"acme.{name}.{action}", "q")] == 5, (name, action)
            assert f"acme.{name}.{action}" in tasks, (name, action)
        # A get hit is too short for a task; its misses share a read: get_workers plain subscribers.
        assert counts[(f"acme.{name}.get", "q")] == 7, name
        assert f"acme.{name}.get" not in tasks, name
        # A short list must not wait behind a long one NATS handed the same subscriber.
        assert counts[(f"acme.{name}.list", "q")] == 3, name
        assert f"acme.{name}.list" in tasks, name


def test_balance_report_and_system_subjects_take_the_same_settings(app: Ekko) -> None:
    counts, tasks = subscribers(app), concurrent(app)
    for subject in ("wallet_balances.ingest", "wallet_balances.latest", "search", "reports.alert_stats", "health"):
        assert counts[(f"acme.{subject}", "q")] == 3, subject
        assert f"acme.{subject}" in tasks, subject
    assert counts[("acme.users.authenticate", "q")] == 3  # a login's bcrypt must not hold up another's
    assert "acme.users.authenticate" in tasks
    assert counts[("acme.admin.backup", "q")] == 1  # admin work: one subscriber
    assert not [subject for subject, queue in counts if queue == "q" and not subject.startswith("acme.")]
    # Every subject but get runs its requests as tasks of one subscriber (one alone needs none).
    plain = {subject for subject, queue in counts if queue == "q" and subject not in tasks}
    assert {s for s in plain if counts[(s, "q")] > 1} == {f"acme.{name}.get" for name in ENTITIES}


def test_the_catalogue_lists_each_subject_under_the_prefix_in_the_queue_group(app: Ekko) -> None:
    served = {subject for subject, queue in subscribers(app) if queue == "q"}
    listed = {e.subject: e.queue_group for e in app.endpoints}
    assert set(listed) == served
    assert set(listed.values()) == {"q"}


def test_a_router_of_a_group_sees_its_subjects_relative_to_it() -> None:
    endpoints = Endpoints(RequestMetrics())
    router, listed = Serving.from_settings(SETTINGS, endpoints).router("wallets.")
    subscribe(router, "get", None, no_body, workers=2, queue="q", endpoints=listed, plain=True)
    assert [sub._resolved_subject_string for sub in router.subscribers] == ["acme.wallets.get"] * 2
    assert [e.subject for e in endpoints] == ["acme.wallets.get"]


def test_the_subscribers_of_one_subject_share_one_handler_wrapper(app: Ekko) -> None:
    """FastStream builds a wrapper (with a MagicMock call recorder) per decorated function:
    shared, 32 `get` subscribers per entity cost one, not 32 (start time and memory)."""
    wrappers: dict[str, set[int]] = {}
    for sub in app.broker.subscribers:
        for call in sub.calls:
            wrappers.setdefault(sub._resolved_subject_string, set()).add(id(call.handler))
    assert wrappers["acme.wallets.get"] and all(len(ids) == 1 for ids in wrappers.values()), {
        subject: len(ids) for subject, ids in wrappers.items() if len(ids) > 1
    }
