"""The HubSpot adapter against the HubSpot fake over loopback: shapes, faults, rate limit."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from storewire.adapters.hubspot_crm import HubSpotCrm, describe_hubspot_error
from storewire.domain.crm import CrmInput
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError
from storewire.http import HttpClient, RetryPolicy, default_timeout
from storewire_local.fakes.hubspot import DEFAULT_ACCESS_TOKEN, HubSpotFake

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server() -> Iterator[HubSpotFake]:
    with HubSpotFake() as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture
def fake(server: HubSpotFake) -> HubSpotFake:
    server.reset()
    return server


def crm(
    fake: HubSpotFake, *, token: str = DEFAULT_ACCESS_TOKEN, read: float = 2.0, attempts: int = 4
) -> HubSpotCrm:
    http = HttpClient(
        httpx.Client(timeout=default_timeout(connect=1.0, read=read)),
        service="hubspot",
        policy=RetryPolicy(max_attempts=attempts, base_delay=0.05, max_delay=0.2),
        describe_error=describe_hubspot_error,
    )
    return HubSpotCrm(http, token, base_url=fake.url)


def contact(email: str, **props: str) -> CrmInput:
    return CrmInput(key=email, properties={"email": email, **props})


def test_given_contacts_when_upserted_twice_then_one_contact_each_with_the_last_values(
    fake: HubSpotFake,
) -> None:
    adapter = crm(fake)

    first = adapter.upsert_contacts([contact("ann@example.com", storewire_order_count="1")])
    second = adapter.upsert_contacts([contact("ann@example.com", storewire_order_count="2")])

    assert first.ids == second.ids
    assert first.created == frozenset({"ann@example.com"})
    assert second.created == frozenset()
    (stored,) = fake.contacts()
    assert stored["properties"]["storewire_order_count"] == "2"


def test_given_an_invalid_email_then_only_its_input_is_refused(fake: HubSpotFake) -> None:
    outcome = crm(fake).upsert_contacts([contact("ann@example.com"), contact("jane@example")])

    assert list(outcome.ids) == ["ann@example.com"]
    assert outcome.errors["jane@example"].code == "INVALID_EMAIL"
    assert [c["properties"]["email"] for c in fake.contacts()] == ["ann@example.com"]


def test_given_a_deal_then_it_is_associated_with_its_contact(fake: HubSpotFake) -> None:
    adapter = crm(fake)
    contact_id = adapter.upsert_contacts([contact("ann@example.com")]).ids["ann@example.com"]
    deal_id = adapter.upsert_deals([CrmInput(key="shopify:s:1", properties={"amount": "9.99"})])
    deal = deal_id.ids["shopify:s:1"]

    outcome = adapter.associate_deals([(deal, contact_id)])

    assert outcome.errors == {}
    assert fake.associated("contacts", contact_id, "deals") == [deal]


def test_given_a_429_fault_with_retry_after_then_the_client_waits_and_succeeds(
    fake: HubSpotFake,
) -> None:
    fake.add_fault({"mode": "429", "retry_after": 1, "count": 1})

    outcome = crm(fake).upsert_contacts([contact("ann@example.com")])

    assert list(outcome.ids) == ["ann@example.com"]
    assert len(fake.contacts()) == 1
    assert len([r for r in fake.requests if r["path"].endswith("batch/upsert")]) == 2


def test_given_the_rolling_limit_is_reached_then_requests_wait_for_the_window(
    fake: HubSpotFake,
) -> None:
    fake.rate_limit, fake.window_seconds = 2, 1.0
    adapter = crm(fake)

    for i in range(4):
        adapter.upsert_contacts([contact(f"u{i}@example.com")])

    assert len(fake.contacts()) == 4
    assert fake.throttled >= 1


@pytest.mark.parametrize("mode", [{"mode": "status", "status": 502}, {"mode": "drop"}])
def test_given_a_5xx_or_a_dropped_answer_then_the_retry_leaves_one_contact(
    fake: HubSpotFake, mode: dict[str, object]
) -> None:
    fake.add_fault({**mode, "count": 1})

    outcome = crm(fake).upsert_contacts([contact("ann@example.com")])

    assert list(outcome.ids) == ["ann@example.com"]
    assert len(fake.contacts()) == 1


def test_given_an_answer_slower_than_the_timeout_then_it_is_retried(fake: HubSpotFake) -> None:
    fake.add_fault({"mode": "slow", "seconds": 1.5, "count": 1})

    outcome = crm(fake, read=0.5).upsert_contacts([contact("ann@example.com")])

    assert list(outcome.ids) == ["ann@example.com"]
    assert len(fake.contacts()) == 1


def test_given_5xx_forever_then_a_retryable_error_after_the_attempts(fake: HubSpotFake) -> None:
    fake.add_fault({"mode": "status", "status": 500, "count": -1})

    with pytest.raises(RetryableUpstreamError) as raised:
        crm(fake, attempts=2).upsert_contacts([contact("ann@example.com")])

    assert raised.value.status == 500
    assert raised.value.attempts == 2


def test_given_a_wrong_token_then_a_permanent_error(fake: HubSpotFake) -> None:
    with pytest.raises(PermanentUpstreamError) as raised:
        crm(fake, token="pat-na1-wrong").upsert_contacts([contact("ann@example.com")])

    assert raised.value.status == 401
    assert raised.value.code == "INVALID_AUTHENTICATION"


def test_given_an_archived_contact_then_the_fake_no_longer_lists_it(fake: HubSpotFake) -> None:
    adapter = crm(fake)
    contact_id = adapter.upsert_contacts([contact("ann@example.com")]).ids["ann@example.com"]

    adapter.archive_contact(contact_id)

    assert fake.contacts() == []
