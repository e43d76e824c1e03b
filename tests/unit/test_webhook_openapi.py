"""docs/openapi/webhooks.yaml, the published description of the webhook API, stays honest:
the route and sources are the template's and the code's, and every answer is documented."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from samples import REPO_ROOT
from storewire import errors
from storewire.errors import StorewireError, UnknownSource
from storewire.ingest import MAX_DELIVERY_ID_BYTES
from storewire.sources import easypost, get_source, shopify, source_names, stripe
from storewire_local.emulator.cfn import load_template

OPENAPI = REPO_ROOT / "docs" / "openapi" / "webhooks.yaml"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))


def _operation(document: dict[str, Any]) -> dict[str, Any]:
    return document["paths"]["/webhooks/{source}"]["post"]


def _error_types() -> list[type[StorewireError]]:
    found: list[type[StorewireError]] = []
    pending = list(StorewireError.__subclasses__())
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__ and cls not in found:
            found.append(cls)
            pending.extend(cls.__subclasses__())
    return found


def test_given_the_template_when_compared_then_the_document_has_its_one_webhook_route(
    document: dict[str, Any],
) -> None:
    template = load_template(REPO_ROOT / "template.yaml")
    events = template["Resources"]["WebhookIngestFunction"]["Properties"]["Events"]
    routes = {
        (str(e["Properties"]["Method"]).lower(), e["Properties"]["Path"])
        for e in events.values()
        if e["Type"] == "HttpApi"
    }

    documented = {(method, path) for path, item in document["paths"].items() for method in item}

    assert documented == routes


def test_given_the_source_registry_when_compared_then_the_enum_lists_exactly_its_sources(
    document: dict[str, Any],
) -> None:
    (source,) = [p for p in _operation(document)["parameters"] if p["in"] == "path"]

    assert source["name"] == "source"
    assert set(source["schema"]["enum"]) == set(source_names())
    for name in source["schema"]["enum"]:
        assert get_source(name).name == name
    with pytest.raises(UnknownSource):
        get_source("woocommerce")


def test_given_each_source_when_compared_then_its_signature_and_headers_are_documented(
    document: dict[str, Any],
) -> None:
    schemes = document["components"]["securitySchemes"]
    headers = {p["name"] for p in _operation(document)["parameters"] if p["in"] == "header"}

    assert {s["name"] for s in schemes.values()} == {
        shopify.HMAC_HEADER,
        stripe.SIGNATURE_HEADER,
        easypost.SIGNATURE_HEADER,
    }
    assert {next(iter(s)) for s in _operation(document)["security"]} == set(schemes)
    assert {
        shopify.TOPIC_HEADER,
        shopify.SHOP_HEADER,
        shopify.WEBHOOK_ID_HEADER,
        shopify.TRIGGERED_AT_HEADER,
    } <= headers


def test_given_the_shopify_topics_when_compared_then_the_handled_ones_are_listed(
    document: dict[str, Any],
) -> None:
    (topic,) = [p for p in _operation(document)["parameters"] if p["name"] == shopify.TOPIC_HEADER]
    (webhook_id,) = [
        p for p in _operation(document)["parameters"] if p["name"] == shopify.WEBHOOK_ID_HEADER
    ]

    assert set(topic["schema"]["x-handled-topics"]) == set(shopify.HANDLED_TOPICS)
    assert webhook_id["schema"]["maxLength"] == MAX_DELIVERY_ID_BYTES


def test_given_every_error_type_when_compared_then_its_status_and_name_are_documented(
    document: dict[str, Any],
) -> None:
    responses = _operation(document)["responses"]
    error_enum = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"][
        "type"
    ]["enum"]
    types = _error_types()

    assert types, "no error types found"
    # The handler answers 200 on success, 500 `InternalError` on a bug, and by type otherwise.
    statuses = {200, 500} | {cls.status_code for cls in types}
    assert {int(code) for code in responses} == statuses
    assert set(error_enum) == {cls.__name__ for cls in types} | {"InternalError"}
    for code, response in responses.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema, f"response {code} has no body schema"
