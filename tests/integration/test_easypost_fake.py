"""The EasyPost adapter and the shared HTTP layer against the EasyPost fake, over loopback."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))

from fakes_labels import SHIP_FROM, SHIP_TO
from storewire.adapters.easypost_carrier import EasyPostCarrier, describe_easypost_error
from storewire.domain.shipments import Parcel, ShipmentRequest
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError
from storewire.http import HttpClient, RetryPolicy
from storewire.sources import Headers, WebhookSecrets
from storewire.sources.easypost import ADAPTER
from storewire_local.fakes.easypost import DEFAULT_API_KEY, DEFAULT_WEBHOOK_SECRET, EasyPostFake

pytestmark = pytest.mark.integration

REFERENCE = "shopify:storewire-demo.myshopify.com:5745289347382"


@pytest.fixture(scope="module")
def fake() -> Iterator[EasyPostFake]:
    with EasyPostFake() as server:
        yield server  # type: ignore[misc]


@pytest.fixture(autouse=True)
def _clean(fake: EasyPostFake) -> None:
    fake.reset()


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def carrier(
    fake: EasyPostFake,
    *,
    key: str = DEFAULT_API_KEY,
    sleeps: Sleeps | None = None,
    read_timeout: float = 5.0,
    attempts: int = 4,
) -> EasyPostCarrier:
    http = HttpClient(
        httpx.Client(timeout=httpx.Timeout(read_timeout, connect=2.0)),
        service="easypost",
        policy=RetryPolicy(max_attempts=attempts, base_delay=0.01, max_delay=0.05),
        describe_error=describe_easypost_error,
        sleep=sleeps if sleeps is not None else Sleeps(),
    )
    return EasyPostCarrier(http, key, base_url=fake.url)


def request(**to: str) -> ShipmentRequest:
    return ShipmentRequest(
        reference=REFERENCE,
        to_address=SHIP_TO.model_copy(update=to),
        from_address=SHIP_FROM,
        parcel=Parcel(
            length=Decimal(10), width=Decimal(8), height=Decimal(4), weight_oz=Decimal("26.5")
        ),
    )


def control(fake: EasyPostFake, path: str, body: object) -> dict[str, Any]:
    answer = httpx.post(f"{fake.url}/_fake/{path}", json=body, timeout=10)
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def state(fake: EasyPostFake) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(f"{fake.url}/_fake/state", timeout=5).json()
    return result


# --------------------------------------------------------------------------- the API


def test_given_a_shipment_when_created_then_rated_by_several_carriers_with_exact_amounts(
    fake: EasyPostFake,
) -> None:
    shipment = carrier(fake).create_shipment(request())

    assert shipment.shipment_id.startswith("shp_")
    assert len(shipment.shipment_id) == len("shp_") + 32
    assert shipment.reference == REFERENCE
    assert {r.carrier for r in shipment.rates} == {"USPS", "UPS", "FedEx"}
    assert all(r.amount.currency == "USD" for r in shipment.rates)
    assert not shipment.purchased


def test_given_a_rate_when_bought_then_tracking_label_and_one_purchase(fake: EasyPostFake) -> None:
    easypost = carrier(fake)
    created = easypost.create_shipment(request())
    cheapest = min(created.rates, key=lambda r: r.amount.amount)

    bought = easypost.buy(created.shipment_id, cheapest.rate_id)

    assert bought.purchased
    assert bought.selected_rate == cheapest
    assert bought.tracking_code
    assert bought.tracker_id is not None
    assert bought.label_url is not None
    assert httpx.get(bought.label_url, timeout=5).headers["content-type"] == "image/png"
    assert len(state(fake)["purchases"]) == 1


def test_given_a_bought_shipment_when_bought_again_then_422_postage_exists_and_still_one(
    fake: EasyPostFake,
) -> None:
    easypost = carrier(fake)
    created = easypost.create_shipment(request())
    easypost.buy(created.shipment_id, created.rates[0].rate_id)

    raw = httpx.post(
        f"{fake.url}/v2/shipments/{created.shipment_id}/buy",
        json={"rate": {"id": created.rates[1].rate_id}},
        auth=(DEFAULT_API_KEY, ""),
        timeout=5,
    )
    again = easypost.buy(created.shipment_id, created.rates[1].rate_id)

    assert raw.status_code == 422
    assert raw.json()["error"]["code"] == "SHIPMENT.POSTAGE.EXISTS"
    assert again.selected_rate == created.rates[0]
    assert len(state(fake)["purchases"]) == 1


def test_given_shipments_of_several_orders_when_found_by_reference_then_only_that_order(
    fake: EasyPostFake,
) -> None:
    easypost = carrier(fake)
    mine = easypost.create_shipment(request())
    easypost.create_shipment(request().model_copy(update={"reference": "another-order"}))

    found = easypost.find_shipments(REFERENCE, since=None)
    by_reference = httpx.get(
        f"{fake.url}/v2/shipments/{REFERENCE}", auth=(DEFAULT_API_KEY, ""), timeout=5
    )

    assert [s.shipment_id for s in found] == [mine.shipment_id]
    assert by_reference.json()["id"] == mine.shipment_id


def test_given_a_wrong_key_when_called_then_401_in_easypost_error_shape(fake: EasyPostFake) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        carrier(fake, key="EZTK_wrong").create_shipment(request())
    raw = httpx.get(f"{fake.url}/v2/shipments", timeout=5)

    assert caught.value.status == 401
    assert caught.value.code == "UNAUTHORIZED"
    assert raw.status_code == 401
    assert set(raw.json()["error"]) == {"code", "message", "errors"}


def test_given_a_to_address_without_street_when_created_then_422_naming_the_field(
    fake: EasyPostFake,
) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        carrier(fake).create_shipment(request(address1=""))

    assert caught.value.status == 422
    assert caught.value.code == "PARAMETER.REQUIRED"
    assert "shipment.to_address.street1" in caught.value.message
    assert state(fake)["shipments"] == {}


def test_given_an_undeliverable_address_when_created_then_422_address_verify_failure(
    fake: EasyPostFake,
) -> None:
    with pytest.raises(PermanentUpstreamError) as caught:
        carrier(fake).create_shipment(request(address1="1 UNDELIVERABLE Rd"))

    assert caught.value.code == "ADDRESS.VERIFY.FAILURE"


def test_given_an_easypost_test_tracking_code_when_tracked_then_its_status(
    fake: EasyPostFake,
) -> None:
    answer = httpx.post(
        f"{fake.url}/v2/trackers",
        json={"tracker": {"tracking_code": "EZ4000000004", "carrier": "USPS"}},
        auth=(DEFAULT_API_KEY, ""),
        timeout=5,
    )

    assert answer.status_code == 201
    assert answer.json()["status"] == "delivered"
    assert answer.json()["id"].startswith("trk_")


# --------------------------------------------------------------------------- faults


def test_given_500_twice_when_buying_then_retried_and_one_purchase(fake: EasyPostFake) -> None:
    sleeps = Sleeps()
    easypost = carrier(fake, sleeps=sleeps)
    created = easypost.create_shipment(request())
    control(fake, "faults", {"mode": "status", "status": 500, "count": 2, "path": "/v2/shipments/"})

    bought = easypost.buy(created.shipment_id, created.rates[0].rate_id)

    assert bought.purchased
    assert len(sleeps) == 2
    assert len(state(fake)["purchases"]) == 1


def test_given_429_with_retry_after_when_creating_then_the_wait_is_honoured(
    fake: EasyPostFake,
) -> None:
    sleeps = Sleeps()
    control(fake, "faults", {"mode": "429", "retry_after": 1, "count": 1})

    carrier(fake, sleeps=sleeps).create_shipment(request())

    assert sleeps == [1.0]


def test_given_the_buy_succeeds_but_the_connection_drops_when_buying_then_one_purchase(
    fake: EasyPostFake,
) -> None:
    easypost = carrier(fake)
    created = easypost.create_shipment(request())
    control(fake, "faults", {"mode": "drop", "path": f"/v2/shipments/{created.shipment_id}/buy"})

    bought = easypost.buy(created.shipment_id, created.rates[0].rate_id)

    assert bought.purchased
    assert len(state(fake)["purchases"]) == 1
    buys = [r for r in fake.requests if r["path"].endswith("/buy")]
    assert len(buys) == 2  # the dropped one (bought) and the resend (422 -> read back)


def test_given_a_slow_answer_past_the_timeout_when_reading_then_retried(
    fake: EasyPostFake,
) -> None:
    easypost = carrier(fake, read_timeout=0.3)
    created = easypost.create_shipment(request())
    control(fake, "faults", {"mode": "slow", "seconds": 1.0, "count": 1})

    read = easypost.get_shipment(created.shipment_id)

    assert read.shipment_id == created.shipment_id
    assert len([r for r in fake.requests if r["method"] == "GET"]) == 2


def test_given_a_slow_buy_past_the_timeout_when_resent_then_still_one_purchase(
    fake: EasyPostFake,
) -> None:
    easypost = carrier(fake, read_timeout=0.3)
    created = easypost.create_shipment(request())
    control(fake, "faults", {"mode": "slow", "seconds": 0.6, "path": "/v2/shipments/shp_"})

    bought = easypost.buy(created.shipment_id, created.rates[0].rate_id)

    assert bought.purchased
    threading.Event().wait(0.8)  # let the slow request finish server-side
    assert len(state(fake)["purchases"]) == 1


def test_given_503_every_time_when_creating_then_retryable_after_the_attempts(
    fake: EasyPostFake,
) -> None:
    control(fake, "faults", {"mode": "status", "status": 503, "count": -1})

    with pytest.raises(RetryableUpstreamError):
        carrier(fake, attempts=3).create_shipment(request())


# --------------------------------------------------------------------------- webhooks


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}/webhooks/easypost", _Receiver.received
    server.shutdown()
    server.server_close()


def test_given_a_bought_label_when_its_tracker_moves_then_signed_updates_verify_and_normalise(
    fake: EasyPostFake, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    easypost = carrier(fake)
    created = easypost.create_shipment(request())
    bought = easypost.buy(created.shipment_id, created.rates[0].rate_id)
    control(fake, "webhooks", {"url": url})

    answer = control(
        fake, f"trackers/{bought.tracker_id}", {"status": "in_transit", "city": "LA", "times": 2}
    )

    assert answer["deliveries"] == [200, 200]
    assert len(received) == 2
    headers, body = received[0]
    assert headers["x-hmac-signature"].startswith("hmac-sha256-hex=")
    ADAPTER.verify(Headers(headers), body, WebhookSecrets(current=DEFAULT_WEBHOOK_SECRET))
    first = ADAPTER.normalise(Headers(headers), body)
    again = ADAPTER.normalise(Headers(received[1][0]), received[1][1])
    assert first.delivery_id == again.delivery_id == answer["event"]["id"]
    (event,) = first.events
    assert event.data is not None
    assert event.data.shipment_id == created.shipment_id
    assert event.data.status == "in_transit"
    assert json.loads(body)["previous_attributes"] == {"status": "pre_transit"}
