"""The EasyPost carrier adapter on `httpx.MockTransport` (no sockets): shapes, errors, retries."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes_labels import SHIP_FROM, SHIP_TO
from storewire.adapters.easypost_carrier import (
    EasyPostCarrier,
    describe_easypost_error,
    parse_shipment,
    shipment_payload,
)
from storewire.domain.money import Money
from storewire.domain.shipments import Parcel, ShipmentRequest
from storewire.errors import PermanentUpstreamError, RetryableUpstreamError
from storewire.http import HttpClient, RetryPolicy

PAYLOADS = Path(__file__).resolve().parents[2] / "events" / "payloads" / "easypost"
KEY = "EZTK_unit_key"
BOUGHT: dict[str, Any] = json.loads((PAYLOADS / "shipment_bought.json").read_text())
SHIPMENT_ID = BOUGHT["id"]


def unbought() -> dict[str, Any]:
    return {
        **BOUGHT,
        "selected_rate": None,
        "postage_label": None,
        "tracking_code": None,
        "tracker": None,
    }


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "errors": []}}
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """A scripted EasyPost: answers in order, records requests and sleeps."""

    def __init__(self, *answers: httpx.Response | Callable[[httpx.Request], httpx.Response]):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        return answer(request) if callable(answer) else answer

    def carrier(self) -> EasyPostCarrier:
        http = HttpClient(
            httpx.Client(transport=httpx.MockTransport(self)),
            service="easypost",
            policy=RetryPolicy(max_attempts=4, base_delay=0.01, max_delay=0.02),
            describe_error=describe_easypost_error,
            sleep=self.sleeps.append,
            rand=lambda: 1.0,
        )
        return EasyPostCarrier(http, KEY, base_url="https://api.easypost.test")


REQUEST = ShipmentRequest(
    reference="shopify:shop:1",
    to_address=SHIP_TO,
    from_address=SHIP_FROM,
    parcel=Parcel(
        length=Decimal(10), width=Decimal(8), height=Decimal(4), weight_oz=Decimal("26.5")
    ),
)


def test_given_a_bought_shipment_when_parsed_then_rates_label_tracking_and_money() -> None:
    shipment = parse_shipment(BOUGHT)

    assert shipment.purchased
    assert shipment.reference == "shopify:storewire-demo.myshopify.com:5745289347382"
    assert shipment.selected_rate is not None
    assert shipment.selected_rate.amount == Money.parse("5.57", "USD")
    assert shipment.selected_rate.carrier == "USPS"
    assert shipment.tracking_code == "9400100208303109310001"
    assert shipment.label_url is not None
    assert shipment.label_url.endswith(".png")
    assert shipment.tracker_id == "trk_9b2c6e0f8e5d4a1c9f3b7a6d5e4c3b2a"
    assert [r.service for r in shipment.rates] == ["GroundAdvantage", "Ground"]
    assert not parse_shipment(unbought()).purchased


def test_given_a_request_when_encoded_then_easypost_field_names_and_numbers() -> None:
    payload = shipment_payload(REQUEST)["shipment"]

    assert payload["reference"] == "shopify:shop:1"
    assert payload["to_address"] == {
        "name": "Ada Lovelace",
        "street1": "179 N Harbor Dr",
        "city": "Redondo Beach",
        "state": "CA",
        "zip": "90277",
        "country": "US",
        "phone": "3105551212",
    }
    assert payload["from_address"]["street2"] == "Floor 5"
    assert payload["parcel"] == {"length": 10.0, "width": 8.0, "height": 4.0, "weight": 26.5}


def test_given_a_create_when_sent_then_basic_auth_with_the_key_as_username() -> None:
    easypost = Recorder(httpx.Response(201, json=unbought()))

    shipment = easypost.carrier().create_shipment(REQUEST)

    (sent,) = easypost.requests
    assert sent.method == "POST"
    assert sent.url.path == "/v2/shipments"
    scheme, token = sent.headers["Authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(token).decode() == f"{KEY}:"
    assert json.loads(sent.content)["shipment"]["reference"] == "shopify:shop:1"
    assert shipment.shipment_id == SHIPMENT_ID


def test_given_a_carrier_500_when_buying_then_retried_and_bought_once() -> None:
    easypost = Recorder(
        error(500, "INTERNAL_SERVER_ERROR", "We're sorry, something went wrong."),
        httpx.Response(200, json=BOUGHT),
    )

    shipment = easypost.carrier().buy(SHIPMENT_ID, "rate_0b1c2d3e4f5a46b7c8d9e0f1a2b3c4d5")

    assert shipment.purchased
    assert [r.url.path for r in easypost.requests] == [f"/v2/shipments/{SHIPMENT_ID}/buy"] * 2
    assert json.loads(easypost.requests[0].content) == {
        "rate": {"id": "rate_0b1c2d3e4f5a46b7c8d9e0f1a2b3c4d5"}
    }
    assert len(easypost.sleeps) == 1


def test_given_429_with_retry_after_when_buying_then_the_wait_is_honoured() -> None:
    easypost = Recorder(
        error(429, "RATE_LIMITED", "You have exceeded the rate limit.", **{"Retry-After": "3"}),
        httpx.Response(200, json=BOUGHT),
    )

    easypost.carrier().buy(SHIPMENT_ID, "rate_x")

    assert easypost.sleeps == [3.0]


def test_given_a_lost_answer_then_postage_exists_when_buying_then_the_bought_shipment() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    easypost = Recorder(
        drop,
        error(422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment."),
        httpx.Response(200, json=BOUGHT),
    )

    shipment = easypost.carrier().buy(SHIPMENT_ID, "rate_x")

    assert shipment.purchased
    assert [(r.method, r.url.path) for r in easypost.requests] == [
        ("POST", f"/v2/shipments/{SHIPMENT_ID}/buy"),
        ("POST", f"/v2/shipments/{SHIPMENT_ID}/buy"),
        ("GET", f"/v2/shipments/{SHIPMENT_ID}"),
    ]


def test_given_a_missing_address_field_when_creating_then_permanent_with_the_field() -> None:
    body = {
        "error": {
            "code": "PARAMETER.REQUIRED",
            "message": "Missing required parameter.",
            "errors": [{"field": "shipment.to_address.street1", "message": "cannot be blank"}],
        }
    }
    easypost = Recorder(httpx.Response(422, json=body))

    with pytest.raises(PermanentUpstreamError) as caught:
        easypost.carrier().create_shipment(REQUEST)

    assert caught.value.status == 422
    assert caught.value.code == "PARAMETER.REQUIRED"
    assert "shipment.to_address.street1: cannot be blank" in caught.value.message
    assert len(easypost.requests) == 1


def test_given_a_wrong_key_when_calling_then_permanent_401() -> None:
    easypost = Recorder(error(401, "UNAUTHORIZED", "The API key provided is invalid."))

    with pytest.raises(PermanentUpstreamError) as caught:
        easypost.carrier().get_shipment(SHIPMENT_ID)

    assert caught.value.status == 401


def test_given_503_every_time_when_creating_then_retryable_after_the_attempts() -> None:
    easypost = Recorder(*[error(503, "SERVICE_UNAVAILABLE", "down")] * 4)

    with pytest.raises(RetryableUpstreamError) as caught:
        easypost.carrier().create_shipment(REQUEST)

    assert caught.value.attempts == 4


def test_given_several_pages_when_finding_by_reference_then_only_tagged_shipments() -> None:
    other = {**unbought(), "id": "shp_other", "reference": "someone-else"}
    mine = {**unbought(), "id": "shp_mine", "reference": "shopify:shop:1"}
    easypost = Recorder(
        httpx.Response(200, json={"shipments": [other], "has_more": True}),
        httpx.Response(200, json={"shipments": [mine], "has_more": False}),
    )

    found = easypost.carrier().find_shipments("shopify:shop:1", since=None)

    assert [s.shipment_id for s in found] == ["shp_mine"]
    first, second = easypost.requests
    assert first.url.params["reference"] == "shopify:shop:1"
    assert first.url.params["page_size"] == "100"
    assert second.url.params["before_id"] == "shp_other"


def test_given_a_non_json_error_when_described_then_the_status() -> None:
    assert describe_easypost_error(httpx.Response(502, text="<html>")) == (None, "HTTP 502")


def test_given_a_shipment_id_with_a_slash_when_read_then_refused_without_a_call() -> None:
    easypost = Recorder()
    with pytest.raises(PermanentUpstreamError):
        easypost.carrier().get_shipment("shp_1/../../v2/users")
    assert easypost.requests == []
