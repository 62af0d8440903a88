"""The in-flight budget of large request bodies (service.model.limits.BodyBudget)."""

from __future__ import annotations

import pytest

from service.model.errors import Overloaded
from service.model.limits import BodyBudget


def test_bodies_are_taken_up_to_the_limit_and_refused_past_it() -> None:
    budget = BodyBudget(1000)
    budget.take(600)
    budget.take(400)  # exactly the limit
    with pytest.raises(Overloaded) as refused:
        budget.take(1)
    assert refused.value.status == 503 and refused.value.code == "overloaded"
    assert "1000 bytes" in refused.value.message and "retry" in refused.value.message
    assert (budget.in_use, budget.refused) == (1000, 1)  # the refused one took nothing


def test_what_is_given_back_can_be_taken_again() -> None:
    budget = BodyBudget(1000)
    budget.take(700)
    with pytest.raises(Overloaded):
        budget.take(700)
    budget.give_back(700)
    budget.take(700)
    assert budget.in_use == 700


def test_one_body_alone_is_taken_whatever_its_size() -> None:
    """Else a limit below max_payload would refuse the largest requests for good."""
    budget = BodyBudget(1000)
    budget.take(5000)
    with pytest.raises(Overloaded):
        budget.take(10)
    budget.give_back(5000)
    assert budget.in_use == 0
