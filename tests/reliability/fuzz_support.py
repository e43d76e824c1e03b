"""Bad webhook requests, each with the answer it must get, and the stack state they must not change.

Every strategy here builds a `BadRequest`: what to send (method, path, headers, raw body) and
what the product must answer (`Expect`: the status and the error type, or the `ignored`
acknowledgement). The expectation comes from how the request was built (an unsigned body is a
401 `SignatureInvalid`, whatever the body), never from running the product's own code.

The bodies start from the committed sender samples (`events/payloads/`), which ingestion
accepts: a missing check shows up as an accepted delivery, i.e. a dedupe claim and events.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from storewire.sources import easypost, shopify, stripe
from storewire_local.testing import item_text

REPO_ROOT = Path(__file__).resolve().parents[2]
PAYLOADS = REPO_ROOT / "events" / "payloads"
SOURCES = ("shopify", "stripe", "easypost")
SHOP = "storewire-fuzz.myshopify.com"
MAX_BODY_BYTES = 4 * 1024 * 1024  # MAX_BODY_BYTES of WebhookIngestFunction in template.yaml
GATEWAY_MAX_BYTES = 10 * 1024 * 1024  # what the HTTP API itself takes
SHOPIFY_MAX_AGE = timedelta(hours=72)  # WEBHOOK_MAX_AGE_SECONDS defaults to the dedupe TTL
STRIPE_TOLERANCE = 300
MAX_DELIVERY_ID_BYTES = 1024
SECRETS = {
    "shopify": "shpss_reliability_secret",
    "stripe": "whsec_reliability_secret",
    "easypost": "whsec_reliability_easypost",
}
"""The webhook secrets the emulator is seeded with (its `LocalEnv` variables) for this suite."""

SHOPIFY_TOPICS = {
    "orders/create": "orders_create",
    "orders/updated": "orders_updated",
    "orders/paid": "orders_paid",
    "orders/cancelled": "orders_cancelled",
    "refunds/create": "refunds_create",
    "customers/create": "customers_create",
    "customers/update": "customers_update",
    "customers/data_request": "customers_data_request",
    "customers/redact": "customers_redact",
    "shop/redact": "shop_redact",
}
STRIPE_SAMPLES = ("payment_intent_succeeded", "payment_intent_payment_failed", "charge_refunded")
STRIPE_TYPES = frozenset(
    {"payment_intent.succeeded", "payment_intent.payment_failed", "charge.refunded"}
)
EASYPOST_SAMPLES = ("tracker_updated", "tracker_updated_delivered")
EASYPOST_DESCRIPTIONS = frozenset({"tracker.updated", "tracker.created"})


def sample(source: str, name: str) -> dict[str, Any]:
    return json.loads((PAYLOADS / source / f"{name}.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class Expect:
    """The answer a bad request must get: a status and the error type, or `ignored`."""

    status: int
    error: str | None = None  # the function's {"error": {"type"}}
    gateway: bool = False  # the gateway's own {"message"} body
    ignored_topic: str | None = None  # 200 {"status": "ignored", "topic": ...}


@dataclass(frozen=True)
class BadRequest:
    category: str
    source: str
    body: bytes
    headers: dict[str, str | bytes] = field(default_factory=dict)
    method: str = "POST"
    path: str = ""
    expect: Expect = field(default_factory=lambda: Expect(400, "MalformedPayload"))
    note: str = ""

    @property
    def url_path(self) -> str:
        return self.path or f"/webhooks/{self.source}"

    def fingerprint(self) -> str:
        return fingerprint(self.method, self.url_path, self.headers, self.body)

    def describe(self) -> str:
        """The request in a failure message (bodies cut short)."""
        body = self.body[:300] + (b"..." if len(self.body) > 300 else b"")
        return (
            f"[{self.category}: {self.note}] {self.method} {self.url_path} "
            f"headers={self.headers!r} body({len(self.body)} bytes)={body!r}"
        )


def fingerprint(method: str, path: str, headers: Any, body: bytes) -> str:
    """A hash of method, path, headers (case-insensitive names) and body: distinct requests."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode() + b"\0" + path.encode("utf-8", "surrogatepass") + b"\0")
    items = headers.items() if hasattr(headers, "items") else headers
    for name, value in sorted(
        (str(k).lower(), v if isinstance(v, bytes) else str(v).encode("utf-8", "surrogatepass"))
        for k, v in items
    ):
        digest.update(name.encode() + b":" + value + b"\n")
    digest.update(b"\0" + body)
    return digest.hexdigest()


def check_answer(request: BadRequest, status: int, text: str) -> str | None:
    """Why the answer is wrong for `request`, or None when it is right."""
    expect = request.expect
    if status != expect.status:
        return f"answered {status}, expected {expect.status}: {text[:500]}"
    try:
        body = json.loads(text)
    except ValueError:
        return f"answer is not JSON: {text[:500]}"
    if expect.ignored_topic is not None:
        if body.get("status") != "ignored":
            return f"expected an ignored acknowledgement, got {body}"
        if expect.ignored_topic and body.get("topic") != expect.ignored_topic:
            return f"ignored the wrong topic: {body}, expected {expect.ignored_topic!r}"
        return None
    if expect.gateway:
        return None if isinstance(body.get("message"), str) else f"not a gateway error: {body}"
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return f"answer lacks error.type/error.message: {body}"
    if error.get("type") != expect.error:
        return f"error type {error.get('type')!r}, expected {expect.error!r}: {body}"
    return None


# --------------------------------------------------------------------------- signing


class Signer:
    """Signs as each sender does, with the secrets the emulator was seeded with."""

    def __init__(self, secrets: dict[str, str], clock: Callable[[], float] = time.time) -> None:
        self.secrets = secrets
        self.clock = clock

    def shopify(
        self,
        body: bytes,
        *,
        topic: str,
        webhook_id: str,
        triggered_at: datetime | None = None,
        secret: str | None = None,
    ) -> dict[str, str | bytes]:
        return dict(
            shopify.signed_headers(
                topic,
                body,
                shop=SHOP,
                webhook_id=webhook_id,
                secret=secret or self.secrets["shopify"],
                triggered_at=triggered_at or datetime.fromtimestamp(self.clock(), UTC),
            )
        )

    def stripe(
        self, body: bytes, *, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str | bytes]:
        t = int(self.clock()) if timestamp is None else timestamp
        return {
            "Content-Type": "application/json",
            "Stripe-Signature": stripe.signature_header(body, secret or self.secrets["stripe"], t),
        }

    def easypost(self, body: bytes, *, secret: str | None = None) -> dict[str, str | bytes]:
        return {
            "Content-Type": "application/json",
            "X-Hmac-Signature": easypost.sign(body, secret or self.secrets["easypost"]),
        }

    def valid(self, source: str, body: bytes, **kwargs: Any) -> dict[str, str | bytes]:
        if source == "shopify":
            kwargs.setdefault("topic", "orders/create")
            kwargs.setdefault("webhook_id", str(uuid.uuid4()))
            return self.shopify(body, **kwargs)
        if source == "stripe":
            return self.stripe(body, **kwargs)
        return self.easypost(body, **kwargs)


SIGNATURE_NAMES = (
    "X-Shopify-Hmac-Sha256",
    "Stripe-Signature",
    "X-Hmac-Signature",
    "X-Shopify-Hmac-Sha1",
    "Signature",
    "Authorization",
)


def signature_header(source: str) -> str:
    return {
        "shopify": "X-Shopify-Hmac-Sha256",
        "stripe": "Stripe-Signature",
        "easypost": "X-Hmac-Signature",
    }[source]


# --------------------------------------------------------------------------- bodies

ids = st.uuids().map(str)


@st.composite
def accepted_body(draw: st.DrawFn, source: str) -> tuple[bytes, str]:
    """A body (and its Shopify topic) that ingestion would accept if signed: the bait."""
    if source == "shopify":
        topic = draw(st.sampled_from(sorted(SHOPIFY_TOPICS)))
        payload = sample("shopify", SHOPIFY_TOPICS[topic])
        if "id" in payload:
            payload["id"] = draw(st.integers(1, 2**53))
        return json.dumps(payload).encode(), topic
    if source == "stripe":
        payload = sample("stripe", draw(st.sampled_from(STRIPE_SAMPLES)))
        payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
        return json.dumps(payload).encode(), payload["type"]
    payload = sample("easypost", draw(st.sampled_from(EASYPOST_SAMPLES)))
    payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
    return json.dumps(payload).encode(), payload["description"]


RAW = "@@raw-json@@"


@dataclass(frozen=True)
class Raw:
    """A JSON literal json.dumps would not write (1e400, a 5000-digit integer)."""

    text: str


def dumps(payload: Any) -> bytes:
    raws: list[str] = []

    def default(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value.text)
            return f"{RAW}{len(raws) - 1}"
        raise TypeError(type(value).__name__)

    text = json.dumps(payload, default=default)
    for i, raw in enumerate(raws):
        text = text.replace(f'"{RAW}{i}"', raw)
    return text.encode("utf-8", "surrogatepass")


# Values a field of each kind can never take. "domain" values pass the payload model but not
# the canonical event (the 500s the first fuzzing run found).
INVALID: dict[str, list[Any]] = {
    "int": ["not-a-number", [], {}, None, 1.5, "1e400", Raw("1e400"), Raw("-1e400")],
    "str": [12345, [], {}, None, True, 0.5],
    "datetime": ["not a date", "2026-11-20T10:00:00", "2026-13-45T00:00:00Z", [], None, ""],
    "amount": [1.5, True, "abc", [], {}, None, "NaN", "0.001", "1e999999", "-Infinity"],
    "list": ["x", {}, 5, None],
    "object": ["x", [], 5, True],
    "nullable_object": ["x", [], 5, True],
    "currency": ["usdx", "", "1$", "€€€", "US"],
    "quantity": [-1, -(10**6), "lots", None, 2.5, Raw("1e400")],
    "evt_id": ["x_123", "", 123, None, "EVT_123", "évt_1"],
    "pi_id": ["ch_123", "", 5, None],
    "ch_id": ["pi_123", "", 5, None],
    "trk_id": ["shp_123", "", 5, None],
    "nonneg_int": [-1, "abc", 1.5, None, Raw("1e400")],
    "currency3": ["us", "usdx", 5, None, ""],
    "easypost_time": ["not a date", 5, None, "2026-02-30T00:00:00Z"],
    "tracking_code": ["", 5, None],
}

ORDER_FIELDS = {
    "id": "int",
    "name": "str",
    "currency": "currency",
    "created_at": "datetime",
    "updated_at": "datetime",
    "subtotal_price": "amount",
    "total_tax": "amount",
    "total_price": "amount",
    "line_items": "list",
    "line_items.0.id": "int",
    "line_items.0.title": "str",
    "line_items.0.quantity": "quantity",
    "line_items.0.price": "amount",
}
REQUIRED: dict[str, dict[str, str]] = {
    **dict.fromkeys(
        ("orders/create", "orders/updated", "orders/paid", "orders/cancelled"), ORDER_FIELDS
    ),
    "refunds/create": {
        "id": "int",
        "order_id": "int",
        "created_at": "datetime",
        "refund_line_items": "list",
    },
    "customers/create": {"id": "int", "created_at": "datetime", "updated_at": "datetime"},
    "customers/update": {"id": "int", "created_at": "datetime", "updated_at": "datetime"},
    "customers/data_request": {"shop_domain": "str", "customer": "object"},
    "customers/redact": {"shop_domain": "str", "customer": "object"},
    "shop/redact": {"shop_domain": "str"},
    "stripe:payment_intent": {
        "id": "evt_id",
        "type": "str",
        "created": "int",
        "data": "object",
        "data.object": "object",
        "data.object.id": "pi_id",
        "data.object.amount": "nonneg_int",
        "data.object.currency": "currency3",
        "data.object.status": "str",
    },
    "stripe:charge": {
        "id": "evt_id",
        "created": "int",
        "data": "object",
        "data.object": "object",
        "data.object.id": "ch_id",
        "data.object.amount": "int",
        "data.object.amount_refunded": "int",
        "data.object.currency": "currency3",
    },
    "easypost": {
        "id": "evt_id",
        "description": "str",
        "result": "nullable_object",
        "result.id": "trk_id",
        "result.tracking_code": "tracking_code",
        "result.status": "str",
        "result.updated_at": "easypost_time",
    },
}


def _set(payload: Any, path: str, value: Any, *, delete: bool = False) -> Any:
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    target = payload
    for key in keys[:-1]:
        target = target[key]
    if delete:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return payload


@st.composite
def misshapen_payload(draw: st.DrawFn, source: str) -> tuple[bytes, str, str]:
    """JSON of the sender's shape with one required field broken: (body, topic, note)."""
    if source == "shopify":
        topic = draw(st.sampled_from(sorted(SHOPIFY_TOPICS)))
        payload = sample("shopify", SHOPIFY_TOPICS[topic])
        fields = REQUIRED[topic]
    elif source == "stripe":
        name = draw(st.sampled_from(STRIPE_SAMPLES))
        payload = sample("stripe", name)
        payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
        topic = payload["type"]
        fields = REQUIRED["stripe:charge" if name == "charge_refunded" else "stripe:payment_intent"]
    else:
        payload = sample("easypost", draw(st.sampled_from(EASYPOST_SAMPLES)))
        payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
        topic = payload["description"]
        fields = REQUIRED["easypost"]
    path = draw(st.sampled_from(sorted(fields)))
    kind = fields[path]
    payload = copy.deepcopy(payload)
    if draw(st.booleans()):
        _set(payload, path, None, delete=True)
        return dumps(payload), topic, f"{path} missing"
    value = draw(st.sampled_from(INVALID[kind]))
    if kind == "quantity" and isinstance(value, int) and draw(st.booleans()):
        value = -draw(st.integers(1, 10**12))
    _set(payload, path, value)
    return dumps(payload), topic, f"{path}={value!r}"


not_json = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(
        [b"", b"{", b'{"id": 1', b"nul", b"\xff\xfe{}", b"{'id': 1}", b'{"a":1}garbage', b"NaN]"]
    ),
).filter(lambda b: not _is_json(b))
json_not_object = st.one_of(
    st.lists(st.integers() | st.text(max_size=8), max_size=5).map(dumps),
    st.integers().map(dumps),
    st.text(max_size=16).map(dumps),
    st.sampled_from([b"null", b"true", b"[]", b'"{}"', b"1e400"]),
    st.integers(50, 400).map(lambda n: b"[" * n + b"]" * n),
)
nested_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=12,
).map(lambda junk: dumps({"junk": junk}))


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


# --------------------------------------------------------------------------- categories


def unsigned(signer: Signer) -> st.SearchStrategy[BadRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(SOURCES))
        body, topic = draw(accepted_body(source))
        headers = signer.valid(source, body, **({"topic": topic} if source == "shopify" else {}))
        how = draw(st.sampled_from(["absent", "empty", "under another name"]))
        name = signature_header(source)
        value = headers.pop(name)
        if how == "empty":
            headers[name] = ""
        elif how == "under another name":
            other = draw(st.sampled_from([n for n in SIGNATURE_NAMES if n != name]))
            headers[other] = value
        return BadRequest(
            "unsigned", source, body, headers, expect=Expect(401, "SignatureInvalid"), note=how
        )

    return build()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def missigned(signer: Signer) -> st.SearchStrategy[BadRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(SOURCES))
        body, topic = draw(accepted_body(source))
        other_body, _ = draw(accepted_body(source))
        if other_body == body:
            other_body = body + b" "
        other_secret = draw(st.text(min_size=1, max_size=24)).encode("utf-8", "replace").decode()
        if other_secret == signer.secrets[source]:
            other_secret += "x"
        extra = {"topic": topic} if source == "shopify" else {}
        good = signer.valid(source, body, **extra)
        name = signature_header(source)
        correct = str(good[name])
        how = draw(
            st.sampled_from(
                ["other body", "other secret", "truncated", "wrong encoding", "junk", "flipped"]
            )
        )
        if how == "other body":
            value = str(signer.valid(source, other_body, **extra)[name])
        elif how == "other secret":
            value = str(signer.valid(source, body, secret=other_secret, **extra)[name])
        elif how == "truncated":
            value = correct[: draw(st.integers(1, len(correct) - 1))]
        elif how == "junk":
            printable = st.characters(codec="ascii", min_codepoint=32, max_codepoint=126)
            value = draw(st.text(printable, min_size=1, max_size=80).map(str.strip).filter(bool))
        elif how == "flipped":
            i = draw(st.integers(len(correct) - 20, len(correct) - 2))
            value = correct[:i] + ("0" if correct[i] != "0" else "1") + correct[i + 1 :]
        else:
            value = _wrong_encoding(draw, source, body, signer)
        if value.strip() == correct or (source != "shopify" and value.strip().lower() == correct):
            value = "x" + value
        headers = dict(good)
        headers[name] = value
        return BadRequest(
            "mis-signed", source, body, headers, expect=Expect(401, "SignatureInvalid"), note=how
        )

    return build()


def _wrong_encoding(draw: st.DrawFn, source: str, body: bytes, signer: Signer) -> str:
    secret = signer.secrets[source].encode()
    if source == "shopify":
        digest = hmac.new(secret, body, hashlib.sha256)
        return draw(
            st.sampled_from(
                [
                    digest.hexdigest(),
                    _b64(digest.digest()).rstrip("="),
                    _b64(digest.hexdigest().encode()),
                ]
            )
        )
    if source == "stripe":
        t = int(signer.clock())
        digest = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256)
        return draw(
            st.sampled_from(
                [
                    f"t={t},v1={_b64(digest.digest())}",
                    f"t={t},v0={digest.hexdigest()}",
                    f"v1={digest.hexdigest()}",
                    f"t={t}",
                    f"t=yesterday,v1={digest.hexdigest()}",
                    f"t={t + 1},v1={digest.hexdigest()}",
                    f"t={t};v1={digest.hexdigest()}",
                    digest.hexdigest(),
                ]
            )
        )
    digest = hmac.new(secret, body, hashlib.sha256)
    return draw(
        st.sampled_from(
            [
                digest.hexdigest(),
                f"hmac-sha1-hex={digest.hexdigest()}",
                f"hmac-sha256-base64={_b64(digest.digest())}",
                f"hmac-sha256-hex={_b64(digest.digest())}",
                f"hmac-sha256-hex:{digest.hexdigest()}",
            ]
        )
    )


def stale(signer: Signer) -> st.SearchStrategy[BadRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(["shopify", "stripe"]))
        body, topic = draw(accepted_body(source))
        now = signer.clock()
        if source == "shopify":
            late = SHOPIFY_MAX_AGE + timedelta(seconds=draw(st.integers(3600, 10 * 365 * 86400)))
            when = datetime.fromtimestamp(now, UTC) - late
            headers = signer.shopify(body, topic=topic, webhook_id=draw(ids))
            offset = timedelta(hours=draw(st.integers(-12, 14)))
            fmt = draw(st.sampled_from(["Z", "offset", "nanoseconds"]))
            zone = timezone(offset) if fmt == "offset" else UTC
            text = when.astimezone(zone).isoformat(timespec="microseconds")
            if fmt == "Z":
                text = text.replace("+00:00", "Z")
            elif fmt == "nanoseconds":
                text = text.replace("+00:00", "123Z")
            headers["X-Shopify-Triggered-At"] = text
            note = f"triggered {text}"
        else:
            skew = draw(st.integers(STRIPE_TOLERANCE + 60, 10 * 365 * 86400))
            t = int(now) + (skew if draw(st.booleans()) else -skew)
            headers = signer.stripe(body, timestamp=t)
            note = f"t={t} ({t - int(now)} s from now)"
        return BadRequest(
            "stale", source, body, headers, expect=Expect(401, "StaleWebhook"), note=note
        )

    return build()


def wrong_topic(signer: Signer) -> st.SearchStrategy[BadRequest]:
    topics = st.one_of(
        st.sampled_from(
            ["products/update", "app/uninstalled", "ORDERS/CREATE", "orders/create/x", "orders"]
        ),
        st.text(
            st.characters(codec="ascii", min_codepoint=33, max_codepoint=126),
            min_size=1,
            max_size=40,
        ),
    )

    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(SOURCES))
        if source == "shopify":
            topic = draw(topics.filter(lambda t: t.strip() not in SHOPIFY_TOPICS))
            body = draw(st.one_of(accepted_body("shopify").map(lambda b: b[0]), not_json))
            headers = signer.shopify(body, topic=topic, webhook_id=draw(ids))
            return BadRequest(
                "wrong-topic",
                source,
                body,
                headers,
                expect=Expect(200, ignored_topic=topic.strip()),
                note=topic,
            )
        if source == "stripe":
            payload = sample("stripe", draw(st.sampled_from(STRIPE_SAMPLES)))
            payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
            how = draw(st.sampled_from(["type", "no order"]))
            if how == "type":
                payload["type"] = draw(topics.filter(lambda t: t not in STRIPE_TYPES))
            else:
                payload["data"]["object"]["metadata"] = draw(
                    st.sampled_from([{}, {"order_id": ""}, {"order_id": "   "}, {"other": "x"}])
                )
            body = dumps(payload)
            return BadRequest(
                "wrong-topic",
                source,
                body,
                signer.stripe(body),
                expect=Expect(200, ignored_topic=payload["type"]),
                note=how,
            )
        payload = sample("easypost", draw(st.sampled_from(EASYPOST_SAMPLES)))
        payload["id"] = f"evt_fuzz{draw(ids).replace('-', '')}"
        if payload["description"] in EASYPOST_DESCRIPTIONS:
            payload["description"] = draw(topics.filter(lambda t: t not in EASYPOST_DESCRIPTIONS))
        body = dumps(payload)
        return BadRequest(
            "wrong-topic",
            source,
            body,
            signer.easypost(body),
            expect=Expect(200, ignored_topic=payload["description"]),
            note=payload["description"],
        )

    return build()


def wrong_shape(signer: Signer) -> st.SearchStrategy[BadRequest]:
    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(SOURCES))
        how = draw(
            st.sampled_from(
                ["not json", "not an object", "nested junk", "field", "field", "field", "long id"]
                + (["missing header"] if source == "shopify" else [])
            )
        )
        topic = draw(st.sampled_from(sorted(SHOPIFY_TOPICS)))
        if how == "not json":
            body, note = draw(not_json), "not JSON"
        elif how == "not an object":
            body, note = draw(json_not_object), "JSON but not an object"
        elif how == "nested junk":
            body, note = draw(nested_junk), "an object of junk"
            if source == "shopify":
                topic = draw(st.sampled_from(sorted(SHOPIFY_TOPICS)))
        elif how == "field":
            body, topic, note = draw(misshapen_payload(source))
        elif how == "long id":
            extra = draw(st.integers(1, 2048))
            long_id = "evt_" + "x" * (MAX_DELIVERY_ID_BYTES - 4 + extra)  # over the limit
            if source == "shopify":
                body, topic = draw(accepted_body("shopify"))
                webhook_id = "x" * (MAX_DELIVERY_ID_BYTES + extra)
                headers = signer.shopify(body, topic=topic, webhook_id=webhook_id)
                return BadRequest("wrong-shape", source, body, headers, note="webhook id too long")
            payload = json.loads(draw(accepted_body(source))[0])
            payload["id"] = long_id
            body, note = dumps(payload), "event id too long"
        else:
            body, topic = draw(accepted_body("shopify"))
            headers = signer.shopify(body, topic=topic, webhook_id=draw(ids))
            missing = draw(
                st.sampled_from(
                    ["X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"]
                )
            )
            if draw(st.booleans()):
                del headers[missing]
            else:
                headers[missing] = ""
            return BadRequest("wrong-shape", source, body, headers, note=f"{missing} missing")
        if source == "shopify":
            headers = signer.shopify(body, topic=topic, webhook_id=draw(ids))
            note = f"{topic}: {note}"
        else:
            headers = signer.valid(source, body)
        return BadRequest("wrong-shape", source, body, headers, note=note)

    return build()


def wrong_route(signer: Signer) -> st.SearchStrategy[BadRequest]:
    names = st.text(
        st.characters(codec="ascii", categories=("Ll", "Lu", "Nd"), include_characters="-_.~"),
        min_size=1,
        max_size=24,
    ).filter(lambda s: s not in SOURCES and s not in (".", ".."))

    @st.composite
    def build(draw: st.DrawFn) -> BadRequest:
        source = draw(st.sampled_from(SOURCES))
        body, topic = draw(accepted_body(source))
        headers = signer.valid(source, body, **({"topic": topic} if source == "shopify" else {}))
        how = draw(st.sampled_from(["unknown source", "unknown source", "method", "path"]))
        if how == "unknown source":
            name = draw(st.one_of(names, st.sampled_from([s.upper() for s in SOURCES])))
            return BadRequest(
                "wrong-route",
                name,
                body,
                headers,
                expect=Expect(404, "UnknownSource"),
                note=name,
            )
        if how == "method":
            method = draw(st.sampled_from(["GET", "PUT", "PATCH", "DELETE"]))
            return BadRequest(
                "wrong-route",
                source,
                body if method != "GET" else b"",
                headers,
                method=method,
                expect=Expect(404, gateway=True),
                note=method,
            )
        path = draw(
            st.sampled_from(
                [
                    f"/webhooks/{source}/{draw(names)}",
                    "/webhooks",
                    f"/webhook/{source}",
                    f"/{source}",
                    f"/webhooks//{source}",
                ]
            )
        )
        return BadRequest(
            "wrong-route",
            source,
            body,
            headers,
            path=path,
            expect=Expect(404, gateway=True),
            note=path,
        )

    return build()


def bad_requests(signer: Signer) -> st.SearchStrategy[BadRequest]:
    """Every category of bad request but the oversized ones (slow: see `oversized`)."""
    return st.one_of(
        unsigned(signer),
        missigned(signer),
        stale(signer),
        wrong_topic(signer),
        wrong_shape(signer),
        wrong_shape(signer),
        wrong_route(signer),
    )


def oversized(signer: Signer, count: int) -> list[BadRequest]:
    """Bodies over 4 MiB (413 from the function) and over 10 MB (413 from the gateway)."""
    cases: list[BadRequest] = []
    for i in range(count):
        source = SOURCES[i % len(SOURCES)]
        base = json.loads(
            json.dumps(
                sample("shopify", "orders_create")
                if source == "shopify"
                else sample(
                    source, STRIPE_SAMPLES[0] if source == "stripe" else EASYPOST_SAMPLES[0]
                )
            )
        )
        if source != "shopify":
            base["id"] = f"evt_fuzz{uuid.uuid4().hex}"
        gateway = i % 4 == 3
        target = (GATEWAY_MAX_BYTES if gateway else MAX_BODY_BYTES) + 1 + i * 997
        base["padding"] = ""
        plain = dumps(base)
        base["padding"] = "x" * (target - len(plain))
        body = dumps(base)
        headers = signer.valid(source, body)
        signed = i % 2 == 0
        if not signed:
            headers.pop(signature_header(source))
        cases.append(
            BadRequest(
                "oversized",
                source,
                body,
                headers,
                expect=Expect(413, gateway=True) if gateway else Expect(413, "PayloadTooLarge"),
                note=f"{len(body)} bytes, {'signed' if signed else 'unsigned'}",
            )
        )
    return cases


# --------------------------------------------------------------------------- stack state


@dataclass(frozen=True)
class StackState:
    """Everything a bad request could leave behind."""

    items: dict[str, list[str]]  # table -> items (canonical JSON), sorted
    messages: dict[str, int]  # queue url -> visible + in flight + delayed
    objects: dict[str, list[str]]  # bucket -> keys
    events: int

    def changes_since(self, before: StackState) -> list[str]:
        """What differs from `before`, as readable lines (empty when nothing changed)."""
        found: list[str] = []
        for table, items in self.items.items():
            new = sorted(set(items) - set(before.items.get(table, [])))
            gone = sorted(set(before.items.get(table, [])) - set(items))
            if new or gone:
                found.append(f"table {table}: new items {new[:5]}, removed {gone[:5]}")
        for queue, count in self.messages.items():
            if count != before.messages.get(queue, 0):
                found.append(f"queue {queue}: {before.messages.get(queue, 0)} -> {count} messages")
        for bucket, keys in self.objects.items():
            new = sorted(set(keys) - set(before.objects.get(bucket, [])))
            if new:
                found.append(f"bucket {bucket}: new objects {new[:5]}")
        if self.events != before.events:
            found.append(f"bus: {self.events - before.events} new events")
        return found


def stack_state(handle: Any) -> StackState:
    """Scan every table, queue and bucket of the emulated stack, and count the bus's events."""
    ddb, sqs, s3 = handle.client("dynamodb"), handle.client("sqs"), handle.client("s3")
    items: dict[str, list[str]] = {}
    for table in ddb.list_tables()["TableNames"]:
        found: list[str] = []
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            found.extend(item_text(item) for item in page["Items"])
        items[table] = sorted(found)
    messages: dict[str, int] = {}
    for url in sqs.list_queues().get("QueueUrls", []):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        messages[url] = sum(
            int(attributes.get(name, 0))
            for name in (
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            )
        )
    objects: dict[str, list[str]] = {}
    for bucket in s3.list_buckets()["Buckets"]:
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            keys.extend(o["Key"] for o in page.get("Contents", []))
        objects[bucket["Name"]] = sorted(keys)
    return StackState(items=items, messages=messages, objects=objects, events=len(handle.events()))
