"""The Shopify Admin GraphQL adapter against the Shopify Admin fake, over loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from storewire.adapters.shopify_admin import (
    ORDER_PAYMENT_QUERY,
    ShopifyAdminGateway,
    describe_shopify_error,
)
from storewire.domain.events import OrderTotals
from storewire.domain.money import Money
from storewire.domain.orders import OrderRecord
from storewire.domain.payments import Verdict, assess
from storewire.http import HttpClient, PermanentUpstreamError, RetryableUpstreamError, RetryPolicy
from storewire_local.fakes.shopify_admin import DEFAULT_ADMIN_TOKEN, ShopifyAdminFake

pytestmark = pytest.mark.integration

SHOP = "storewire-demo.myshopify.com"
TOTAL = Money.parse("177.96", "USD")


@pytest.fixture(scope="module")
def fake() -> Iterator[ShopifyAdminFake]:
    with ShopifyAdminFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _clean(fake: ShopifyAdminFake) -> None:
    fake.reset()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def admin(
    fake: ShopifyAdminFake, *, token: str = DEFAULT_ADMIN_TOKEN, sleeps: Sleeps | None = None
) -> ShopifyAdminGateway:
    http = HttpClient(
        httpx.Client(timeout=5),
        service="shopify_admin",
        policy=RetryPolicy(max_attempts=3, base_delay=0.01, max_retry_after=60),
        describe_error=describe_shopify_error,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return ShopifyAdminGateway(http, token, base_url=fake.url, api_version="2025-07")


def order(external: str = "5745289347382", total: Money = TOTAL) -> OrderRecord:
    zero = Money.zero(total.currency)
    return OrderRecord(
        order_id=f"shopify:{SHOP}:{external}",
        external_order_id=external,
        shop=SHOP,
        channel="shopify",
        order_number="#1001",
        currency=total.currency,
        totals=OrderTotals(subtotal=total, discounts=zero, shipping=zero, tax=zero, total=total),
        storefront_updated_at=datetime(2026, 11, 20, 15, 0, tzinfo=UTC),
    )


def seed(fake: ShopifyAdminFake, **payload: object) -> None:
    body = {"id": 5745289347382, "name": "#1001", "currency": "USD", "total_price": "177.96"}
    httpx.post(f"{fake.url}/_fake/orders", json={**body, **payload}).raise_for_status()


def test_given_a_paid_order_when_its_transactions_are_read_then_the_payment_matches(
    fake: ShopifyAdminFake,
) -> None:
    seed(fake, financial_status="paid")

    payment = admin(fake).fetch_payment(order(), None)

    assert payment.state == "succeeded"
    assert payment.reference == "gid://shopify/Order/5745289347382"
    assert payment.amount == TOTAL
    assert assess(TOTAL, payment).verdict is Verdict.CONFIRMED


def test_given_a_partial_refund_when_read_then_the_net_is_a_mismatch(
    fake: ShopifyAdminFake,
) -> None:
    seed(
        fake,
        transactions=[
            {"kind": "SALE", "status": "SUCCESS", "amount": "177.96"},
            {"kind": "REFUND", "status": "SUCCESS", "amount": "20.00"},
            {"kind": "SALE", "status": "FAILURE", "amount": "177.96"},
        ],
    )

    payment = admin(fake).fetch_payment(order(), None)

    assert payment.amount == Money.parse("157.96", "USD")
    assert assess(TOTAL, payment).verdict is Verdict.MISMATCH


def test_given_only_an_authorization_when_read_then_pending(fake: ShopifyAdminFake) -> None:
    seed(fake, financial_status="authorized")

    assert admin(fake).fetch_payment(order(), None).state == "pending"


def test_given_the_real_response_shape_when_queried_then_cost_extensions_are_present(
    fake: ShopifyAdminFake,
) -> None:
    seed(fake, financial_status="paid")

    answer = httpx.post(
        f"{fake.url}/admin/api/2025-07/graphql.json",
        headers={"X-Shopify-Access-Token": DEFAULT_ADMIN_TOKEN},
        json={
            "query": ORDER_PAYMENT_QUERY,
            "variables": {"id": "gid://shopify/Order/5745289347382"},
        },
    ).json()

    node = answer["data"]["order"]
    assert node["totalPriceSet"]["shopMoney"] == {"amount": "177.96", "currencyCode": "USD"}
    assert node["transactions"][0]["amountSet"]["shopMoney"]["amount"] == "177.96"
    cost = answer["extensions"]["cost"]
    assert set(cost) == {"requestedQueryCost", "actualQueryCost", "throttleStatus"}
    assert set(cost["throttleStatus"]) == {"maximumAvailable", "currentlyAvailable", "restoreRate"}


def test_given_a_throttled_answer_when_read_then_the_wait_comes_from_the_cost(
    fake: ShopifyAdminFake,
) -> None:
    seed(fake, financial_status="paid")
    httpx.post(f"{fake.url}/_fake/faults", json={"mode": "throttle", "count": 1})
    sleeps = Sleeps()

    payment = admin(fake, sleeps=sleeps).fetch_payment(order(), None)

    assert payment.state == "succeeded"
    # (requestedQueryCost 3 - currentlyAvailable 0) / restoreRate 100, floored at 0.5 s
    assert sleeps == [0.5]


def test_given_an_empty_bucket_when_read_then_throttled_until_it_refills() -> None:
    now = [0.0]
    with ShopifyAdminFake(clock=lambda: now[0]) as frozen:
        seed(frozen, financial_status="paid")  # type: ignore[arg-type]
        httpx.post(f"{frozen.url}/_fake/bucket", json={"currentlyAvailable": 0})
        single = ShopifyAdminGateway(
            HttpClient(
                httpx.Client(timeout=5), service="shopify_admin", policy=RetryPolicy(max_attempts=1)
            ),
            DEFAULT_ADMIN_TOKEN,
            base_url=frozen.url,
        )

        with pytest.raises(RetryableUpstreamError) as caught:
            single.fetch_payment(order(), None)
        assert caught.value.code == "THROTTLED"
        assert caught.value.retry_after == pytest.approx(0.5)

        now[0] += 1.0  # 100 points restored
        assert single.fetch_payment(order(), None).state == "succeeded"


def test_given_a_wrong_token_when_queried_then_401_permanent(fake: ShopifyAdminFake) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        admin(fake, token="shpat_wrong").fetch_payment(order(), None)

    assert caught.value.status == 401
    assert "Invalid API key or access token" in caught.value.message


def test_given_an_unknown_order_when_read_then_permanent_order_not_found(
    fake: ShopifyAdminFake,
) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        admin(fake).fetch_payment(order("999"), None)

    assert caught.value.code == "order_not_found"


def test_given_500_then_200_when_read_then_retried(fake: ShopifyAdminFake) -> None:
    seed(fake, financial_status="paid")
    httpx.post(f"{fake.url}/_fake/faults", json={"mode": "status", "status": 502, "count": 1})

    assert admin(fake).fetch_payment(order(), None).amount == TOTAL


def test_given_a_zero_decimal_shop_when_read_then_amounts_are_exact(
    fake: ShopifyAdminFake,
) -> None:
    yen = Money.parse("1500", "JPY")
    seed(fake, currency="JPY", total_price="1500", financial_status="paid")

    payment = admin(fake).fetch_payment(order(total=yen), None)

    assert payment.amount is not None
    assert payment.amount.amount == Decimal("1500")
    assert assess(yen, payment).verdict is Verdict.CONFIRMED
