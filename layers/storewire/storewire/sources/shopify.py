"""Shopify webhooks: verify `X-Shopify-Hmac-Sha256` and normalise each topic to events.

Shopify signs the raw body: `base64(HMAC-SHA256(secret, body))`. Topics we handle:

=====================  =======================
topic                  canonical event
=====================  =======================
orders/create          OrderPlaced
orders/updated         OrderUpdated
orders/paid            OrderPaymentReported
orders/cancelled       OrderCancelled
refunds/create         RefundIssued
customers/create       CustomerUpserted
customers/update       CustomerUpserted
customers/data_request CustomerDataRequested
customers/redact       CustomerRedactionRequested
shop/redact            ShopRedactionRequested
=====================  =======================

Any other topic (`products/update`, `app/uninstalled`, ...) is acknowledged and ignored.
Payloads are parsed with models of only the fields we use (extra fields are ignored), so a
body that lacks one, or carries a float where Shopify sends an amount string, is
`MalformedPayload`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, ValidationError

from storewire.domain.events import (
    Address,
    CanonicalEvent,
    CustomerData,
    CustomerDataRequested,
    CustomerRedactionRequested,
    CustomerRef,
    CustomerUpserted,
    OrderCancelled,
    OrderData,
    OrderLine,
    OrderPaymentReported,
    OrderPlaced,
    OrderTotals,
    OrderUpdated,
    PrivacyCustomerData,
    RefundData,
    RefundIssued,
    RefundLine,
    RefundTransaction,
    ShopRedactionData,
    ShopRedactionRequested,
    canonical_customer_id,
    canonical_order_id,
    event_id,
)
from storewire.domain.money import Money, total
from storewire.errors import MalformedPayload, SignatureInvalid
from storewire.sources import Delivery, Headers, Normalised, WebhookSecrets

SOURCE = "shopify"
DEFAULT_API_VERSION = "2025-10"

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
SHOP_HEADER = "X-Shopify-Shop-Domain"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
API_VERSION_HEADER = "X-Shopify-API-Version"


# --------------------------------------------------------------------------- signing


def sign(body: bytes, secret: str) -> str:
    """The `X-Shopify-Hmac-Sha256` value Shopify sends for `body` signed with `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed_headers(
    topic: str,
    body: bytes,
    *,
    shop: str,
    webhook_id: str,
    secret: str,
    triggered_at: datetime | None = None,
    event_id: str | None = None,
    api_version: str = DEFAULT_API_VERSION,
) -> dict[str, str]:
    """Every header Shopify sends with a webhook, signed, as a storefront would send them."""
    when = (triggered_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "Content-Type": "application/json",
        TOPIC_HEADER: topic,
        HMAC_HEADER: sign(body, secret),
        SHOP_HEADER: shop,
        API_VERSION_HEADER: api_version,
        WEBHOOK_ID_HEADER: webhook_id,
        EVENT_ID_HEADER: event_id or webhook_id,
        TRIGGERED_AT_HEADER: when.isoformat(timespec="microseconds").replace("+00:00", "Z"),
    }


def verify_signature(headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
    """Raise `SignatureInvalid` unless the HMAC header matches `body` under a secret."""
    provided = headers.get(HMAC_HEADER)
    if not provided:
        raise SignatureInvalid(f"missing {HMAC_HEADER} header")
    provided_bytes = provided.strip().encode("utf-8", errors="replace")
    matched = False
    for secret in secrets.candidates():
        # Compare against every candidate so timing does not reveal which one matched.
        matched |= hmac.compare_digest(sign(body, secret).encode(), provided_bytes)
    if not matched:
        raise SignatureInvalid(f"{HMAC_HEADER} does not match the body")


_FRACTION = re.compile(r"\.(\d{6})\d+")


def parse_timestamp(value: str) -> datetime | None:
    """A Shopify header timestamp (nanoseconds, 'Z') as an aware datetime; None if invalid."""
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r".\1", value.strip()))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- payload models


def _amount(value: Any) -> Any:
    if isinstance(value, float | bool):
        raise ValueError("amount must be a decimal string, not a float")
    return value


Amount = Annotated[Decimal, BeforeValidator(_amount)]


def _blank_to_none(value: Any) -> Any:
    return None if value == "" else value


OptionalText = Annotated[str | None, BeforeValidator(_blank_to_none)]


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _MoneyBag(_Payload):
    amount: Amount
    currency_code: str


class _MoneySet(_Payload):
    shop_money: _MoneyBag


class _Address(_Payload):
    name: OptionalText = None
    first_name: OptionalText = None
    last_name: OptionalText = None
    company: OptionalText = None
    address1: OptionalText = None
    address2: OptionalText = None
    city: OptionalText = None
    province_code: OptionalText = None
    zip: OptionalText = None
    country_code: OptionalText = None
    phone: OptionalText = None

    def to_domain(self) -> Address:
        name = self.name or " ".join(p for p in (self.first_name, self.last_name) if p) or None
        return Address(
            name=name,
            company=self.company,
            address1=self.address1,
            address2=self.address2,
            city=self.city,
            province_code=self.province_code,
            zip=self.zip,
            country_code=self.country_code,
            phone=self.phone,
        )


class _CustomerRef(_Payload):
    id: int
    email: OptionalText = None


class _LineItem(_Payload):
    id: int
    sku: OptionalText = None
    product_id: int | None = None
    variant_id: int | None = None
    title: str
    variant_title: OptionalText = None
    name: OptionalText = None
    vendor: OptionalText = None
    quantity: int
    price: Amount
    total_discount: Amount = Decimal(0)
    grams: int = 0
    requires_shipping: bool = True


class _ShippingLine(_Payload):
    price: Amount


class _Order(_Payload):
    id: int
    name: str
    email: OptionalText = None
    currency: str
    financial_status: OptionalText = None
    fulfillment_status: OptionalText = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    cancelled_at: AwareDatetime | None = None
    cancel_reason: OptionalText = None
    subtotal_price: Amount
    total_discounts: Amount = Decimal(0)
    total_tax: Amount
    total_price: Amount
    total_outstanding: Amount | None = None
    total_shipping_price_set: _MoneySet | None = None
    shipping_lines: list[_ShippingLine] = []
    payment_gateway_names: list[str] = []
    tags: str = ""
    test: bool = False
    customer: _CustomerRef | None = None
    shipping_address: _Address | None = None
    line_items: list[_LineItem]


class _RefundLineItemRef(_Payload):
    id: int
    sku: OptionalText = None
    product_id: int | None = None
    variant_id: int | None = None


class _RefundLineItem(_Payload):
    id: int
    line_item_id: int
    quantity: int
    restock_type: str
    location_id: int | None = None
    subtotal_set: _MoneySet
    total_tax_set: _MoneySet
    line_item: _RefundLineItemRef | None = None


class _Transaction(_Payload):
    id: int
    kind: str
    status: str
    gateway: OptionalText = None
    amount: Amount
    currency: str


class _Refund(_Payload):
    id: int
    order_id: int
    created_at: AwareDatetime
    processed_at: AwareDatetime | None = None
    note: OptionalText = None
    refund_line_items: list[_RefundLineItem]
    transactions: list[_Transaction] = []


class _EmailConsent(_Payload):
    state: OptionalText = None


class _Customer(_Payload):
    id: int
    email: OptionalText = None
    first_name: OptionalText = None
    last_name: OptionalText = None
    phone: OptionalText = None
    state: OptionalText = None
    tags: str = ""
    email_marketing_consent: _EmailConsent | None = None
    default_address: _Address | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime


class _PrivacyCustomer(_Payload):
    id: int | None = None
    email: OptionalText = None


class _DataRequest(_Payload):
    id: int | str | None = None


class _CustomerPrivacy(_Payload):
    """`customers/data_request` and `customers/redact` (the phone is not kept)."""

    shop_id: int | None = None
    shop_domain: str
    customer: _PrivacyCustomer
    orders_requested: list[int] = []
    orders_to_redact: list[int] = []
    data_request: _DataRequest | None = None


class _ShopRedact(_Payload):
    shop_id: int | None = None
    shop_domain: str


# --------------------------------------------------------------------------- normalisation


def _tags(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.split(",") if t.strip())


def _id(value: int | None) -> str | None:
    return None if value is None else str(value)


def _order_data(order: _Order) -> OrderData:
    currency = order.currency.upper()

    def money(amount: Decimal) -> Money:
        return Money.parse(amount, currency)

    if order.total_shipping_price_set is not None:
        shipping = Money.parse(
            order.total_shipping_price_set.shop_money.amount,
            order.total_shipping_price_set.shop_money.currency_code,
        )
    else:
        shipping = total((money(line.price) for line in order.shipping_lines), currency)
    return OrderData(
        external_order_id=str(order.id),
        order_number=order.name,
        currency=currency,
        financial_status=order.financial_status,
        fulfillment_status=order.fulfillment_status,
        lines=tuple(
            OrderLine(
                line_id=str(line.id),
                sku=line.sku,
                product_id=_id(line.product_id),
                variant_id=_id(line.variant_id),
                title=line.title,
                variant_title=line.variant_title,
                name=line.name,
                vendor=line.vendor,
                quantity=line.quantity,
                unit_price=money(line.price),
                total_discount=money(line.total_discount),
                grams=line.grams,
                requires_shipping=line.requires_shipping,
            )
            for line in order.line_items
        ),
        totals=OrderTotals(
            subtotal=money(order.subtotal_price),
            discounts=money(order.total_discounts),
            shipping=shipping,
            tax=money(order.total_tax),
            total=money(order.total_price),
            outstanding=None if order.total_outstanding is None else money(order.total_outstanding),
        ),
        customer=(
            None
            if order.customer is None
            else CustomerRef(
                external_customer_id=str(order.customer.id),
                email=order.customer.email or order.email,
            )
        ),
        shipping_address=None
        if order.shipping_address is None
        else order.shipping_address.to_domain(),
        payment_gateway_names=tuple(order.payment_gateway_names),
        tags=_tags(order.tags),
        test=order.test,
        created_at=order.created_at,
        updated_at=order.updated_at,
        cancelled_at=order.cancelled_at,
        cancel_reason=order.cancel_reason,
    )


_RESTOCKING = frozenset({"return", "cancel", "legacy_restock"})


def _refund_data(refund: _Refund) -> RefundData:
    currencies = [t.currency for t in refund.transactions] + [
        line.subtotal_set.shop_money.currency_code for line in refund.refund_line_items
    ]
    if not currencies:
        raise MalformedPayload(
            "refunds/create payload has neither refund_line_items nor transactions",
            fields=["refund_line_items", "transactions"],
        )
    currency = currencies[0].upper()
    lines = tuple(
        RefundLine(
            refund_line_id=str(line.id),
            line_id=str(line.line_item_id),
            sku=line.line_item.sku if line.line_item else None,
            product_id=_id(line.line_item.product_id) if line.line_item else None,
            variant_id=_id(line.line_item.variant_id) if line.line_item else None,
            quantity=line.quantity,
            restock=line.restock_type in _RESTOCKING,
            restock_type=line.restock_type,
            location_id=_id(line.location_id),
            subtotal=Money.parse(
                line.subtotal_set.shop_money.amount, line.subtotal_set.shop_money.currency_code
            ),
            total_tax=Money.parse(
                line.total_tax_set.shop_money.amount, line.total_tax_set.shop_money.currency_code
            ),
        )
        for line in refund.refund_line_items
    )
    transactions = tuple(
        RefundTransaction(
            transaction_id=str(t.id),
            kind=t.kind,
            status=t.status,
            gateway=t.gateway,
            amount=Money.parse(t.amount, t.currency),
        )
        for t in refund.transactions
    )
    return RefundData(
        refund_id=str(refund.id),
        external_order_id=str(refund.order_id),
        currency=currency,
        lines=lines,
        transactions=transactions,
        amount=total(
            (t.amount for t in transactions if t.kind == "refund" and t.status == "success"),
            currency,
        ),
        restock=any(line.restock for line in lines),
        note=refund.note,
        created_at=refund.created_at,
        processed_at=refund.processed_at,
    )


def _customer_data(customer: _Customer) -> CustomerData:
    return CustomerData(
        external_customer_id=str(customer.id),
        email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        phone=customer.phone,
        state=customer.state,
        email_marketing_consent=(
            customer.email_marketing_consent.state if customer.email_marketing_consent else None
        ),
        tags=_tags(customer.tags),
        default_address=(
            customer.default_address.to_domain() if customer.default_address else None
        ),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


_ORDER_EVENTS: dict[str, type[CanonicalEvent]] = {
    "orders/create": OrderPlaced,
    "orders/updated": OrderUpdated,
    "orders/paid": OrderPaymentReported,
    "orders/cancelled": OrderCancelled,
}
_CUSTOMER_TOPICS = frozenset({"customers/create", "customers/update"})
_REFUND_TOPIC = "refunds/create"
_PRIVACY_CUSTOMER_EVENTS: dict[str, type[CanonicalEvent]] = {
    "customers/data_request": CustomerDataRequested,
    "customers/redact": CustomerRedactionRequested,
}
_SHOP_REDACT_TOPIC = "shop/redact"
PRIVACY_TOPICS: frozenset[str] = frozenset(_PRIVACY_CUSTOMER_EVENTS) | {_SHOP_REDACT_TOPIC}
"""Shopify's mandatory compliance topics (docs/privacy.md): never logged beyond their ids."""

HANDLED_TOPICS: frozenset[str] = (
    frozenset(_ORDER_EVENTS) | _CUSTOMER_TOPICS | {_REFUND_TOPIC} | PRIVACY_TOPICS
)
"""The topics that produce canonical events; every other topic is acknowledged and ignored."""


def _validate[M: BaseModel](model: type[M], topic: str, payload: Mapping[str, Any] | bytes) -> M:
    """The payload model of `payload`: a decoded dict, or the raw body, which pydantic parses
    and validates in one pass (about a third of `json.loads` and a validation on this path)."""
    try:
        if isinstance(payload, bytes):
            return model.model_validate_json(payload)
        return model.model_validate(payload)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False)
        if problems and not problems[0]["loc"]:
            if problems[0]["type"] == "json_invalid":
                raise MalformedPayload(
                    f"{topic} body is not valid JSON", fields=["(body)"]
                ) from None
            if problems[0]["type"] == "model_type":
                raise MalformedPayload(
                    f"{topic} body must be a JSON object", fields=["(body)"]
                ) from None
        fields = [".".join(str(p) for p in e["loc"]) or "(body)" for e in problems]
        details = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, problems, strict=True))
        raise MalformedPayload(
            f"{topic} payload does not fit its shape: {details[:1000]}",
            fields=fields,
        ) from None


def normalise_payload(
    topic: str,
    payload: Mapping[str, Any] | bytes,
    *,
    shop: str,
    delivery_id: str,
    occurred_at: datetime | None,
) -> tuple[CanonicalEvent, ...]:
    """The canonical events of one handled Shopify topic (`MalformedPayload` if misshapen):
    from the webhook's raw body, or from a payload already decoded (the Admin API's, when
    reconciling)."""

    def envelope(event_type: str, **fields: Any) -> dict[str, Any]:
        return {
            "event_id": event_id(SOURCE, delivery_id, event_type, 0),
            "source": SOURCE,
            "shop": shop,
            "channel": SOURCE,
            "delivery_id": delivery_id,
            **fields,
        }

    model: type[CanonicalEvent]
    if topic in _ORDER_EVENTS:
        model = _ORDER_EVENTS[topic]
        order = _order_data(_validate(_Order, topic, payload))
        order_id = canonical_order_id(SOURCE, shop, order.external_order_id)
        customer = order.customer
        fields = envelope(
            model.model_fields["event_type"].default,
            occurred_at=occurred_at or order.updated_at,
            order_id=order_id,
            external_order_id=order.external_order_id,
            customer_id=(
                canonical_customer_id(SOURCE, shop, customer.external_customer_id)
                if customer and customer.external_customer_id
                else None
            ),
            correlation_id=order_id,
            data=order,
        )
    elif topic == _REFUND_TOPIC:
        model = RefundIssued
        refund = _refund_data(_validate(_Refund, topic, payload))
        order_id = canonical_order_id(SOURCE, shop, refund.external_order_id)
        fields = envelope(
            "RefundIssued",
            occurred_at=occurred_at or refund.created_at,
            order_id=order_id,
            external_order_id=refund.external_order_id,
            correlation_id=order_id,
            data=refund,
        )
    elif topic in _CUSTOMER_TOPICS:
        model = CustomerUpserted
        customer_data = _customer_data(_validate(_Customer, topic, payload))
        customer_id = canonical_customer_id(SOURCE, shop, customer_data.external_customer_id)
        fields = envelope(
            "CustomerUpserted",
            occurred_at=occurred_at or customer_data.updated_at,
            customer_id=customer_id,
            correlation_id=customer_id,
            data=customer_data,
        )
    elif topic in _PRIVACY_CUSTOMER_EVENTS:
        model = _PRIVACY_CUSTOMER_EVENTS[topic]
        request = _validate(_CustomerPrivacy, topic, payload)
        external_customer_id = _id(request.customer.id)
        if external_customer_id is None and request.customer.email is None:
            raise MalformedPayload(
                f"{topic} names neither a customer id nor an email", fields=["customer"]
            )
        order_ids = request.orders_requested or request.orders_to_redact
        subject_id = (
            canonical_customer_id(SOURCE, shop, external_customer_id)
            if external_customer_id
            else None
        )
        fields = envelope(
            model.model_fields["event_type"].default,
            occurred_at=occurred_at or datetime.now(UTC),
            customer_id=subject_id,
            correlation_id=subject_id or f"{SOURCE}:{shop}:privacy:{delivery_id}",
            data=PrivacyCustomerData(
                shop_id=_id(request.shop_id),
                external_customer_id=external_customer_id,
                email=request.customer.email,
                external_order_ids=tuple(str(o) for o in order_ids),
                data_request_id=(
                    str(request.data_request.id)
                    if request.data_request and request.data_request.id is not None
                    else None
                ),
            ),
        )
    elif topic == _SHOP_REDACT_TOPIC:
        model = ShopRedactionRequested
        shop_request = _validate(_ShopRedact, topic, payload)
        fields = envelope(
            "ShopRedactionRequested",
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=f"{SOURCE}:{shop}",
            data=ShopRedactionData(
                shop_id=_id(shop_request.shop_id), shop_domain=shop_request.shop_domain
            ),
        )
    else:
        raise ValueError(f"topic {topic!r} is not handled")
    return (model(**fields),)


# --------------------------------------------------------------------------- the adapter


def _required(headers: Headers, name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise MalformedPayload(f"missing {name} header", fields=[name])
    return value


class ShopifySource:
    """The `shopify` source adapter (see `storewire.sources.SourceAdapter`)."""

    name = SOURCE

    def describe(self, headers: Headers) -> Delivery:
        triggered = headers.get(TRIGGERED_AT_HEADER)
        return Delivery(
            topic=headers.get(TOPIC_HEADER),
            shop=headers.get(SHOP_HEADER),
            delivery_id=headers.get(WEBHOOK_ID_HEADER),
            sent_at=parse_timestamp(triggered) if triggered else None,
        )

    def verify(self, headers: Headers, body: bytes, secrets: WebhookSecrets) -> None:
        verify_signature(headers, body, secrets)

    def normalise(self, headers: Headers, body: bytes) -> Normalised:
        topic = _required(headers, TOPIC_HEADER)
        shop = _required(headers, SHOP_HEADER)
        delivery_id = _required(headers, WEBHOOK_ID_HEADER)
        if topic not in HANDLED_TOPICS:
            return Normalised(topic=topic, shop=shop, delivery_id=delivery_id, ignored=True)
        triggered = headers.get(TRIGGERED_AT_HEADER)
        events = normalise_payload(
            topic,
            body,
            shop=shop,
            delivery_id=delivery_id,
            occurred_at=parse_timestamp(triggered) if triggered else None,
        )
        return Normalised(topic=topic, shop=shop, delivery_id=delivery_id, events=events)


ADAPTER = ShopifySource()
