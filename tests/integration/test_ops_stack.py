"""`storewire dlq list|redrive --stack NAME` and `storewire replay --stack NAME` against a
CloudFormation stack in moto: queues found by DescribeStackResources, the bus and the event log
group by the stack's outputs, events read from the log group and put on the bus again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from storewire_local.cli import app
from typer.testing import CliRunner

REGION = "us-east-1"
TEMPLATE = {
    "Resources": {
        "PayDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
        "PayQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["PayDeadLetterQueue", "Arn"]},
                    "maxReceiveCount": 5,
                }
            },
        },
        "EventLogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {"LogGroupName": "/aws/events/storewire-it"},
        },
    },
    "Outputs": {
        "EventBusName": {"Value": "storewire-it"},  # moto's Ref of an EventBus is not its name
        "EventLogGroupName": {"Value": {"Ref": "EventLogGroup"}},
    },
}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName="sw-it", TemplateBody=json.dumps(TEMPLATE))
        resources = {
            r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
            for r in cloudformation.describe_stack_resources(StackName="sw-it")["StackResources"]
        }
        boto3.client("events", region_name=REGION).create_event_bus(Name="storewire-it")
        yield resources


def run(*args: str) -> Any:
    return CliRunner().invoke(app, [*args, "--stack", "sw-it", "--region", REGION])


def test_dlq_list_and_redrive_against_a_stack(stack: dict[str, str]) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    dlq, source = stack["PayDeadLetterQueue"], stack["PayQueue"]
    body = {"detail-type": "OrderPlaced", "detail": {"order_id": "o-1", "event_id": "evt_1"}}
    sqs.send_message(
        QueueUrl=dlq,
        MessageBody=json.dumps(body),
        MessageAttributes={
            "storewire-error-type": {"DataType": "String", "StringValue": "MalformedPayload"},
            "storewire-reason": {"DataType": "String", "StringValue": "no lines"},
        },
    )

    listed = run("dlq", "list", "--json")
    assert listed.exit_code == 0, listed.output
    (queue,) = json.loads(listed.stdout)
    assert (queue["queue"], queue["source"], queue["depth"]) == (
        "PayDeadLetterQueue",
        "PayQueue",
        1,
    )
    (message,) = queue["messages"]
    assert message["order_id"] == "o-1"
    assert message["error"] == "MalformedPayload: no lines"

    moved = run("dlq", "redrive", "PayDeadLetterQueue", "--all")
    assert moved.exit_code == 0, moved.output
    received = sqs.receive_message(QueueUrl=source, MessageAttributeNames=["All"])["Messages"]
    assert [json.loads(m["Body"]) for m in received] == [body]
    assert "MessageAttributes" not in received[0]
    assert sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []


def test_replay_reads_the_event_log_group_and_puts_the_events_again(
    stack: dict[str, str],
) -> None:
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_stream(logGroupName="/aws/events/storewire-it", logStreamName="s")
    now = int(time.time() * 1000)
    envelopes = [
        {
            "id": f"eb-{n}",
            "source": "storewire.ingest",
            "detail-type": detail_type,
            "time": "2026-11-27T04:00:00Z",
            "detail": {"event_id": f"evt_{n}", "order_id": order},
        }
        for n, (detail_type, order) in enumerate(
            [("OrderPlaced", "o-1"), ("OrderPlaced", "o-2"), ("PaymentConfirmed", "o-1")]
        )
    ]
    logs.put_log_events(
        logGroupName="/aws/events/storewire-it",
        logStreamName="s",
        logEvents=[
            {"timestamp": now + n, "message": json.dumps(e)} for n, e in enumerate(envelopes)
        ],
    )

    sqs = boto3.client("sqs", region_name=REGION)
    sink = sqs.create_queue(QueueName="sink")["QueueUrl"]
    sink_arn = sqs.get_queue_attributes(QueueUrl=sink, AttributeNames=["QueueArn"])
    events = boto3.client("events", region_name=REGION)
    events.put_rule(
        Name="all", EventBusName="storewire-it", EventPattern='{"source": ["storewire.ingest"]}'
    )
    events.put_targets(
        Rule="all",
        EventBusName="storewire-it",
        Targets=[{"Id": "sink", "Arn": sink_arn["Attributes"]["QueueArn"]}],
    )

    dry = run("replay", "o-1", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "2 events (dry run" in dry.stdout
    replayed = run("replay", "o-1")
    assert replayed.exit_code == 0, replayed.output
    assert "2 events re-emitted on storewire-it" in replayed.stdout
    received = sqs.receive_message(QueueUrl=sink, MaxNumberOfMessages=10)["Messages"]
    replayed_ids = sorted(json.loads(m["Body"])["detail"]["event_id"] for m in received)
    assert replayed_ids == ["evt_0", "evt_2"]
