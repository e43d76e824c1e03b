"""The emulator itself, on its fixture graph: routes, bus -> rule -> queue -> consumer,
partial batch failures and redrive, schedules, faults, the moto lock, worker crashes."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from storewire_local.emulator import InvocationError
from storewire_local.testing import EmulatorHandle

pytestmark = pytest.mark.e2e


def publish(emu: EmulatorHandle, *details: dict[str, Any]) -> httpx.Response:
    return emu.http.post("/publish", json=[{"detail": d} for d in details])


def counter(emu: EmulatorHandle, pk: str, attribute: str) -> int:
    item = (
        emu.client("dynamodb")
        .get_item(
            TableName=emu.resource("CounterTable"), Key={"pk": {"S": pk}}, ConsistentRead=True
        )
        .get("Item")
    )
    return int(item[attribute]["N"]) if item else 0


# ---------------------------------------------------------------- HTTP API


def test_route_becomes_a_v2_event_with_the_template_environment(
    fixture_emulator: EmulatorHandle,
) -> None:
    answer = fixture_emulator.http.post(
        "/echo/bob?x=1&x=2&y=",
        content=b'{"hello": "world"}',
        headers=[("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "c1=v1; c2=v2")],
    )
    assert answer.status_code == 201
    assert answer.headers["x-echo"] == "1"
    echoed = answer.json()
    event = echoed["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{name}"
    assert event["rawPath"] == "/echo/bob"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["pathParameters"] == {"name": "bob"}
    assert event["headers"]["x-multi"] == "a,b"
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    assert "cookie" not in event["headers"]
    assert event["body"] == '{"hello": "world"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/echo/bob"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["routeKey"] == "POST /echo/{name}"
    assert context["stage"] == "$default"
    assert context["accountId"] == "123456789012"
    assert isinstance(context["timeEpoch"], int)

    env = echoed["env"]
    assert env["STAGE"] == "local"
    assert env["EVENT_BUS_NAME"] == "fixture-local"
    assert env["TABLE_NAME"] == "fixture-counters-local"
    assert env["QUEUE_URL"] == fixture_emulator.queue_url("WorkQueue")
    assert env["QUEUE_ARN"] == "arn:aws:sqs:us-east-1:123456789012:fixture-work-local"
    assert env["SECRET_ID"].startswith(
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:storewire-local-WebhookSecret"
    )
    assert env["BUCKET"] == "storewire-local-blobbucket"
    assert env["IS_LOCAL"] == "yes"
    assert env["GREETING"] == "hello fixture from us-east-1/123456789012"
    assert env["AWS_ENDPOINT_URL"] == fixture_emulator.aws_endpoint_url
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "storewire-local-EchoFunction"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["_HANDLER"] == "app.lambda_handler"
    assert echoed["layer"].endswith("fixtures/layers/fixturelib/fixturelib/__init__.py")
    assert echoed["context"]["memory_limit_in_mb"] == 256
    assert 0 < echoed["context"]["remaining_ms"] <= 3000


def test_greedy_routes_binary_bodies_and_bare_results(fixture_emulator: EmulatorHandle) -> None:
    http = fixture_emulator.http
    binary = bytes(range(256))
    event = http.put("/any/a/b/c", content=binary).json()["event"]
    assert event["routeKey"] == "ANY /any/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == binary

    bare = http.get("/any/bare")
    assert (bare.status_code, bare.json()) == (200, {"bare": True})
    assert bare.headers["content-type"] == "application/json"
    text = http.get("/any/text")
    assert (text.status_code, text.text) == (200, "plain words")


def test_unmatched_routes_and_handler_errors_answer_like_api_gateway(
    fixture_emulator: EmulatorHandle,
) -> None:
    http = fixture_emulator.http
    assert http.post("/nope").json() == {"message": "Not Found"}
    assert http.post("/nope").status_code == 404
    assert http.get("/echo/bob").status_code == 404  # the route is POST only
    failed = http.post("/any/raise")
    assert (failed.status_code, failed.json()) == (500, {"message": "Internal Server Error"})


def test_a_crashed_worker_fails_its_invocation_and_is_restarted(
    fixture_emulator: EmulatorHandle,
) -> None:
    http = fixture_emulator.http
    before = http.get("/any/pid").json()["pid"]
    crashed = http.get("/any/crash")
    assert (crashed.status_code, crashed.json()) == (500, {"message": "Internal Server Error"})
    after = http.get("/any/pid")
    assert after.status_code == 200
    assert after.json()["pid"] != before
    assert fixture_emulator.emu.runner("EchoFunction").restarts >= 1


def test_invoke_returns_the_result_or_raises_the_lambda_error(
    fixture_emulator: EmulatorHandle,
) -> None:
    emu = fixture_emulator.emu
    assert emu.invoke("ScheduledFunction", {"kind": "direct"}) == {"seen": "direct"}
    with pytest.raises(InvocationError) as raised:
        emu.invoke("EchoFunction", {"rawPath": "/raise"})
    assert raised.value.error["errorType"] == "RuntimeError"
    assert raised.value.error["errorMessage"] == "boom"


def test_a_handler_past_its_timeout_is_stopped(fixture_emulator: EmulatorHandle) -> None:
    emu = fixture_emulator.emu
    assert 0 < emu.invoke("SleepyFunction", {"seconds": 0})["remaining_ms"] <= 1000
    started = time.monotonic()
    with pytest.raises(InvocationError) as raised:
        emu.invoke("SleepyFunction", {"seconds": 30})
    assert raised.value.error["errorType"] == "Sandbox.Timedout"
    assert time.monotonic() - started < 5
    assert emu.invoke("SleepyFunction", {"seconds": 0})["remaining_ms"] > 0


# ---------------------------------------------------------------- resources


def test_resources_follow_the_template(fixture_emulator: EmulatorHandle) -> None:
    resources = fixture_emulator.emu.physical_resources()
    assert "ProdOnlyQueue" not in resources  # Condition IsProd is false locally
    assert "HttpApi" not in resources
    secret = fixture_emulator.client("secretsmanager").get_secret_value(
        SecretId=resources["WebhookSecret"]
    )
    assert json.loads(secret["SecretString"]) == {
        "current": "fixture-from-env",
        "previous": "fixture-previous",
    }
    table = fixture_emulator.client("dynamodb").describe_table(TableName="fixture-counters-local")
    assert table["Table"]["GlobalSecondaryIndexes"][0]["IndexName"] == "gsi1"
    ttl = fixture_emulator.client("dynamodb").describe_time_to_live(
        TableName="fixture-counters-local"
    )
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    attrs = fixture_emulator.client("sqs").get_queue_attributes(
        QueueUrl=fixture_emulator.queue_url("WorkQueue"), AttributeNames=["All"]
    )["Attributes"]
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] == 3
    assert attrs["VisibilityTimeout"] == "30"


# ---------------------------------------------------------------- the graph


def test_bus_rule_queue_consumer(fixture_emulator: EmulatorHandle) -> None:
    answer = publish(fixture_emulator, {"key": "graph-1"}, {"key": "graph-2"})
    assert answer.status_code == 200
    ids = answer.json()["ids"]
    fixture_emulator.wait_idle()
    assert counter(fixture_emulator, "done#graph-1", "done") == 1
    assert counter(fixture_emulator, "done#graph-2", "done") == 1
    recorded = {e["id"]: e for e in fixture_emulator.events("WorkRequested")}
    assert set(ids) <= set(recorded)
    envelope = recorded[ids[0]]
    assert envelope["source"] == "fixture.publisher"
    assert envelope["detail"] == {"key": "graph-1"}
    assert envelope["account"] == "123456789012"
    assert envelope["region"] == "us-east-1"
    assert fixture_emulator.peek("WorkQueue") == []


def test_partial_batch_failure_is_retried_then_dead_lettered(
    fixture_emulator: EmulatorHandle,
) -> None:
    publish(
        fixture_emulator,
        {"key": "pb-ok-1"},
        {"key": "pb-poison", "fail": True},
        {"key": "pb-ok-2"},
    )
    fixture_emulator.wait_idle(timeout=30)
    assert counter(fixture_emulator, "done#pb-ok-1", "done") == 1
    assert counter(fixture_emulator, "done#pb-ok-2", "done") == 1
    # maxReceiveCount is 3: three attempts, then moto moves it to the DLQ on the next receive
    assert counter(fixture_emulator, "attempts#pb-poison", "attempts") == 3
    assert fixture_emulator.peek("WorkQueue") == []
    dead = fixture_emulator.peek_bodies("WorkDeadLetterQueue")
    assert [body["detail"]["key"] for body in dead] == ["pb-poison"]


def test_schedules_fire_on_demand(fixture_emulator: EmulatorHandle) -> None:
    answer = fixture_emulator.control("POST", "schedules/ScheduledFunction/Nightly")
    assert answer.json() == {"ok": True, "result": {"seen": "Scheduled Event"}}
    item = fixture_emulator.client("dynamodb").get_item(
        TableName="fixture-counters-local", Key={"pk": {"S": "scheduled#last"}}
    )["Item"]
    envelope = json.loads(item["event"]["S"])
    assert envelope["source"] == "aws.events"
    assert envelope["detail-type"] == "Scheduled Event"
    assert envelope["detail"] == {}
    assert envelope["resources"][0].startswith("arn:aws:events:us-east-1:123456789012:rule/")
    custom = fixture_emulator.emu.fire_schedule("ScheduledFunction", "Often")
    assert custom == {"seen": "custom-input"}
    from_rule = fixture_emulator.control("POST", "schedules/ScheduledFunction/HourlyRule")
    assert from_rule.json() == {"ok": True, "result": {"seen": "from-rule"}}
    missing = fixture_emulator.control("POST", "schedules/ScheduledFunction/Nope")
    assert missing.status_code == 404


def test_put_events_fault_answers_5xx_and_the_retry_succeeds(
    fixture_emulator: EmulatorHandle,
) -> None:
    before = len(fixture_emulator.events())
    fixture_emulator.fault("events", "PutEvents", status=500, count=1)
    failed = publish(fixture_emulator, {"key": "fault-1"})
    assert (failed.status_code, failed.json()) == (502, {"error": "InternalException"})
    assert len(fixture_emulator.events()) == before
    retried = publish(fixture_emulator, {"key": "fault-1"})
    assert retried.status_code == 200
    fixture_emulator.wait_idle()
    assert len(fixture_emulator.events()) == before + 1
    assert counter(fixture_emulator, "done#fault-1", "done") == 1


def test_faults_match_query_and_json_protocols_until_cleared(
    fixture_emulator: EmulatorHandle,
) -> None:
    sqs = fixture_emulator.client("sqs", config=Config(retries={"total_max_attempts": 1}))
    fixture_emulator.fault("sqs", "GetQueueUrl", status=503, count=None)
    for _ in range(2):
        with pytest.raises(ClientError) as raised:
            sqs.get_queue_url(QueueName="fixture-work-local")
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    listed = fixture_emulator.control("GET", "faults").json()
    assert listed[0]["operation"] == "GetQueueUrl"
    fixture_emulator.clear_faults()
    assert sqs.get_queue_url(QueueName="fixture-work-local")["QueueUrl"]


def test_the_moto_lock_makes_conditional_writes_linearizable(
    fixture_emulator: EmulatorHandle,
) -> None:
    table = "fixture-counters-local"
    ddb = fixture_emulator.client("dynamodb", config=Config(max_pool_connections=25))
    for round_ in range(3):
        key = {"pk": {"S": f"stock#{round_}"}}
        ddb.put_item(TableName=table, Item={**key, "units": {"N": "5"}})
        barrier = threading.Barrier(20)
        outcomes: list[str] = []

        def take(
            key: dict[str, Any] = key,
            barrier: threading.Barrier = barrier,
            outcomes: list[str] = outcomes,
        ) -> None:
            barrier.wait()
            try:
                ddb.update_item(
                    TableName=table,
                    Key=key,
                    UpdateExpression="SET units = units - :one",
                    ConditionExpression="units > :zero",
                    ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
                )
                outcomes.append("ok")
            except ClientError as exc:
                outcomes.append(exc.response["Error"]["Code"])

        threads = [threading.Thread(target=take) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert outcomes.count("ok") == 5
        assert outcomes.count("ConditionalCheckFailedException") == 15
        item = ddb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]
        assert item["units"]["N"] == "0"


def test_long_polling_does_not_hold_the_lock(fixture_emulator: EmulatorHandle) -> None:
    sqs = fixture_emulator.client("sqs")
    url = sqs.create_queue(QueueName="fixture-long-poll")["QueueUrl"]
    threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="late")).start()
    started = time.monotonic()
    answer = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
    assert [m["Body"] for m in answer["Messages"]] == ["late"]
    assert time.monotonic() - started < 4
