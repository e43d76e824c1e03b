"""`storewire events`: filtering, and reading a deployed stack's event log (stubbed clients)."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from storewire_local.events_query import filter_events, stack_events, stack_log_group

ORDER = "shopify:storewire-demo.myshopify.com:820982911946154508"


def envelope(detail_type: str, order_id: str | None, external: Any, time: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": f"id-{detail_type}-{time}",
        "detail-type": detail_type,
        "source": "storewire.shopify",
        "time": time,
        "detail": {"order_id": order_id, "external_order_id": external},
    }


EVENTS = [
    envelope("OrderPlaced", ORDER, "820982911946154508", "2026-11-27T01:00:00Z"),
    envelope("CustomerUpserted", None, None, "2026-11-27T01:00:01Z"),
    envelope("OrderPaymentReported", ORDER, 820982911946154508, "2026-11-27T01:00:02Z"),
    envelope("OrderPlaced", "shopify:other:1", "1", "2026-11-27T01:00:03Z"),
]


def test_filter_by_canonical_or_external_order_id_and_type() -> None:
    assert [e["detail-type"] for e in filter_events(EVENTS, order=ORDER)] == [
        "OrderPlaced",
        "OrderPaymentReported",
    ]
    by_external = filter_events(EVENTS, order="820982911946154508")
    assert len(by_external) == 2  # an integer external id compares as a string
    assert len(filter_events(EVENTS, detail_type="OrderPlaced")) == 2
    assert filter_events(EVENTS, order=ORDER, detail_type="OrderPlaced") == [EVENTS[0]]
    assert filter_events(EVENTS) == EVENTS


def client(service: str) -> Any:
    return boto3.client(
        service,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def test_stack_log_group_from_outputs() -> None:
    cfn = client("cloudformation")
    stubber = Stubber(cfn)
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "storewire-prod",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                    "Outputs": [
                        {"OutputKey": "EventBusName", "OutputValue": "storewire-prod"},
                        {"OutputKey": "EventLogGroupName", "OutputValue": "/aws/events/prod"},
                    ],
                }
            ]
        },
        {"StackName": "storewire-prod"},
    )
    with stubber:
        assert stack_log_group(cfn, "storewire-prod") == "/aws/events/prod"
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "x",
                    "CreationTime": "2026-01-01T00:00:00Z",
                    "StackStatus": "CREATE_COMPLETE",
                }
            ]
        },
    )
    with stubber, pytest.raises(LookupError):
        stack_log_group(cfn, "x")


def test_stack_events_pages_parses_filters_and_orders() -> None:
    logs = client("logs")
    stubber = Stubber(logs)

    def item(event: dict[str, Any], ts: int) -> dict[str, Any]:
        return {
            "logStreamName": "s",
            "timestamp": ts,
            "message": json.dumps(event),
            "eventId": str(ts),
        }

    stubber.add_response(
        "filter_log_events",
        {"events": [item(EVENTS[2], 3), item(EVENTS[1], 2)], "nextToken": "page2"},
        {"logGroupName": "/aws/events/prod"},
    )
    stubber.add_response(
        "filter_log_events",
        {
            "events": [
                item(EVENTS[0], 1),
                {"logStreamName": "s", "timestamp": 9, "message": "not json", "eventId": "9"},
            ]
        },
        {"logGroupName": "/aws/events/prod", "nextToken": "page2"},
    )
    with stubber:
        found = stack_events(logs, "/aws/events/prod", order=ORDER)
    assert [e["detail-type"] for e in found] == ["OrderPlaced", "OrderPaymentReported"]
    stubber.assert_no_pending_responses()


def test_events_stack_cli_against_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """`storewire events --stack` end to end against moto's CloudFormation and Logs."""
    from moto import mock_aws
    from storewire_local.cli import app
    from typer.testing import CliRunner

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    template = {
        "Resources": {
            "EventLogGroup": {
                "Type": "AWS::Logs::LogGroup",
                "Properties": {"LogGroupName": "/aws/events/storewire-prod"},
            }
        },
        "Outputs": {"EventLogGroupName": {"Value": {"Ref": "EventLogGroup"}}},
    }
    with mock_aws():
        boto3.client("cloudformation").create_stack(
            StackName="storewire-prod", TemplateBody=json.dumps(template)
        )
        logs = boto3.client("logs")
        logs.create_log_stream(logGroupName="/aws/events/storewire-prod", logStreamName="s")
        logs.put_log_events(
            logGroupName="/aws/events/storewire-prod",
            logStreamName="s",
            logEvents=[
                {"timestamp": 1_795_000_000_000 + i, "message": json.dumps(e)}
                for i, e in enumerate(EVENTS)
            ],
        )
        result = CliRunner().invoke(
            app, ["events", "--stack", "storewire-prod", "--order", "820982911946154508"]
        )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [e["detail-type"] for e in found] == ["OrderPlaced", "OrderPaymentReported"]
