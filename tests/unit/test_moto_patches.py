"""The emulator's moto speed-ups keep DynamoDB's transaction semantics: all or nothing."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from storewire_local.emulator import moto_patches

TABLE = "patched"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    moto_patches.apply()


@pytest.fixture
def table(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.put_item(TableName=TABLE, Item=_item("stock", "A", 5))
        yield client


def _item(pk: str, sk: str, units: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "units": {"N": str(units)}}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def _take(units: int) -> dict[str, Any]:
    return {
        "Update": {
            "TableName": TABLE,
            "Key": _key("stock", "A"),
            "UpdateExpression": "SET #u = #u - :q",
            "ConditionExpression": "#u >= :q",
            "ExpressionAttributeNames": {"#u": "units"},
            "ExpressionAttributeValues": {":q": {"N": str(units)}},
        }
    }


def _new_entry(sk: str) -> dict[str, Any]:
    return {
        "Put": {
            "TableName": TABLE,
            "Item": _item("ledger", sk, 1),
            "ConditionExpression": "attribute_not_exists(pk)",
        }
    }


def _units(client: Any) -> int:
    item = client.get_item(TableName=TABLE, Key=_key("stock", "A"))["Item"]
    return int(item["units"]["N"])


def test_a_cancelled_transaction_changes_nothing(table: Any) -> None:
    table.put_item(TableName=TABLE, Item=_item("ledger", "taken", 1))
    with pytest.raises(ClientError) as caught:
        table.transact_write_items(
            TransactItems=[_take(2), _new_entry("fresh"), _new_entry("taken")]
        )
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert _units(table) == 5
    assert "Item" not in table.get_item(TableName=TABLE, Key=_key("ledger", "fresh"))


def test_a_transaction_that_passes_applies_every_write(table: Any) -> None:
    table.transact_write_items(TransactItems=[_take(2), _new_entry("one")])
    table.transact_write_items(TransactItems=[_take(3), _new_entry("two")])
    assert _units(table) == 0
    with pytest.raises(ClientError):
        table.transact_write_items(TransactItems=[_take(1), _new_entry("three")])
    assert _units(table) == 0
    assert "Item" in table.get_item(TableName=TABLE, Key=_key("ledger", "two"))
    assert "Item" not in table.get_item(TableName=TABLE, Key=_key("ledger", "three"))


def test_two_writes_to_one_item_are_refused_and_change_nothing(table: Any) -> None:
    with pytest.raises(ClientError) as caught:
        table.transact_write_items(TransactItems=[_take(1), _take(1)])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert _units(table) == 5


def test_tables_are_no_longer_deep_copied_per_transaction() -> None:
    import moto.dynamodb.models as ddb_models
    from moto.dynamodb.models.table import Table

    moto_patches.apply()
    sentinel = object.__new__(Table)
    assert ddb_models.copy.deepcopy(sentinel) is sentinel
    assert ddb_models.copy.deepcopy([1, [2]]) == [1, [2]]


def test_a_query_sees_its_partition_only_in_range_order_both_ways(table: Any) -> None:
    for sk in ("c", "a", "b"):
        table.put_item(TableName=TABLE, Item=_item("ledger", sk, 1))
    table.put_item(TableName=TABLE, Item=_item("other", "a", 1))

    def keys(forward: bool, **extra: Any) -> list[str]:
        answer = table.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "ledger"}, **extra.pop("values", {})},
            ScanIndexForward=forward,
            **extra,
        )
        return [item["sk"]["S"] for item in answer["Items"]]

    assert keys(True) == ["a", "b", "c"]
    assert keys(False) == ["c", "b", "a"]
    assert keys(True, Limit=2) == ["a", "b"]
    empty = table.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "nobody"}},
    )
    assert empty["Items"] == []
    assert empty["Count"] == 0


def test_a_query_pages_through_a_partition(table: Any) -> None:
    for n in range(25):
        table.put_item(TableName=TABLE, Item=_item("ledger", f"{n:03d}", n))
    seen: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = table.query(
            TableName=TABLE,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :z)",
            ExpressionAttributeValues={":pk": {"S": "ledger"}, ":z": {"S": "0"}},
            Limit=10,
            **extra,
        )
        seen += [item["sk"]["S"] for item in page["Items"]]
        start = page.get("LastEvaluatedKey")
        if not start:
            break
    assert seen == [f"{n:03d}" for n in range(25)]


@pytest.mark.usefixtures("aws_env")
def test_sqs_attributes_and_retention_answer_as_before() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="q", Attributes={"MessageRetentionPeriod": "60"})[
            "QueueUrl"
        ]
        for n in range(5):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"] == {
            "ApproximateNumberOfMessages": "5",
            "ApproximateNumberOfMessagesNotVisible": "0",
        }
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2, VisibilityTimeout=30)
        assert len(got["Messages"]) == 2
        assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"] == {
            "ApproximateNumberOfMessages": "3",
            "ApproximateNumberOfMessagesNotVisible": "2",
        }
        with pytest.raises(ClientError):
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])


def test_messages_past_their_retention_are_not_received() -> None:
    import moto.sqs.models as sqs_models

    moto_patches.apply()

    class Queue:
        message_retention_period = 60

    class Message:
        def __init__(self, age: float) -> None:
            self.sent_timestamp = int((time.time() - age) * 1000)

    class Backend:
        def get_queue(self, _name: str) -> Queue:
            return Queue()

    check = sqs_models.SQSBackend.is_message_valid_based_on_retention_period
    assert check(Backend(), "q", Message(age=10))
    assert not check(Backend(), "q", Message(age=61))


def test_put_still_refuses_an_empty_set_outside_the_keys(table: Any) -> None:
    with pytest.raises(ClientError) as caught:
        table.put_item(
            TableName=TABLE, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "tags": {"SS": []}}
        )
    assert "may not be empty" in caught.value.response["Error"]["Message"]
    table.put_item(TableName=TABLE, Item={"pk": {"S": "p"}, "sk": {"S": "s"}, "n": {"N": "1"}})
    assert "Item" in table.get_item(TableName=TABLE, Key=_key("p", "s"))


@pytest.mark.usefixtures("aws_env")
def test_queue_counts_stay_right_around_sends() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="counted")["QueueUrl"]
        names = ["ApproximateNumberOfMessages"]
        for n in range(1, 4):
            sqs.send_message(QueueUrl=url, MessageBody=str(n))
            got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            assert got == {"ApproximateNumberOfMessages": str(n)}
        sqs.send_message_batch(
            QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "a"}, {"Id": "b", "MessageBody": "b"}]
        )
        got = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert got["ApproximateNumberOfMessages"] == "5"


@pytest.fixture
def verified_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_patches, "VERIFY", True)


@pytest.mark.usefixtures("verified_answers")
def test_plain_dynamodb_answers_equal_moto_serializer_for_every_data_operation(
    table: Any,
) -> None:
    # Every answer below is also serialized by moto's shape walk and compared (VERIFY)
    every_type = {
        "pk": {"S": "kinds"},
        "sk": {"S": "all"},
        "text": {"S": "é ✓"},
        "number": {"N": "-12.50"},
        "blob": {"B": b"\x00\x01zlib\xff"},
        "strings": {"SS": ["a", "b"]},
        "numbers": {"NS": ["1", "2.5"]},
        "blobs": {"BS": [b"\x00", b"\x01"]},
        "list": {"L": [{"S": "x"}, {"N": "1"}, {"M": {"deep": {"B": b"\x02"}}}]},
        "map": {"M": {"flag": {"BOOL": True}, "nothing": {"NULL": True}}},
    }
    table.put_item(TableName=TABLE, Item=every_type, ReturnConsumedCapacity="TOTAL")
    got = table.get_item(TableName=TABLE, Key=_key("kinds", "all"), ConsistentRead=True)
    assert got["Item"]["blob"]["B"] == b"\x00\x01zlib\xff"
    assert got["Item"]["list"]["L"][2]["M"]["deep"]["B"] == b"\x02"
    assert "Item" not in table.get_item(TableName=TABLE, Key=_key("kinds", "missing"))
    for sk in ("B", "C", "D"):
        table.put_item(TableName=TABLE, Item=_item("stock", sk, 1))
    first = table.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "stock"}},
        Limit=2,
        ScanIndexForward=False,
        ReturnConsumedCapacity="TOTAL",
    )
    rest = table.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "stock"}},
        ExclusiveStartKey=first["LastEvaluatedKey"],
        ScanIndexForward=False,
    )
    assert [i["sk"]["S"] for i in first["Items"] + rest["Items"]] == ["D", "C", "B", "A"]
    assert table.scan(TableName=TABLE, Select="COUNT")["Count"] == 5
    for returned in ("ALL_NEW", "ALL_OLD", "UPDATED_NEW", "NONE"):
        table.update_item(
            TableName=TABLE,
            Key=_key("stock", "A"),
            UpdateExpression="SET units = units + :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues=returned,
        )
    old = table.delete_item(TableName=TABLE, Key=_key("stock", "D"), ReturnValues="ALL_OLD")
    assert old["Attributes"]["sk"] == {"S": "D"}
    table.batch_write_item(
        RequestItems={
            TABLE: [
                {"PutRequest": {"Item": _item("stock", "E", 2)}},
                {"DeleteRequest": {"Key": _key("stock", "C")}},
            ]
        }
    )
    batch = table.batch_get_item(
        RequestItems={TABLE: {"Keys": [_key("stock", "E"), _key("kinds", "all")]}}
    )
    assert len(batch["Responses"][TABLE]) == 2
    table.transact_write_items(TransactItems=[_take(1)], ReturnConsumedCapacity="TOTAL")
    pair = table.transact_get_items(
        TransactItems=[
            {"Get": {"TableName": TABLE, "Key": _key("stock", "A")}},
            {"Get": {"TableName": TABLE, "Key": _key("kinds", "all")}},
        ]
    )
    assert pair["Responses"][1]["Item"]["blobs"]["BS"] == [b"\x00", b"\x01"]


@pytest.mark.usefixtures("verified_answers")
def test_refused_writes_still_answer_with_moto_errors(table: Any) -> None:
    with pytest.raises(ClientError) as refused:
        table.put_item(
            TableName=TABLE,
            Item=_item("stock", "A", 1),
            ConditionExpression="attribute_not_exists(pk)",
        )
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    with pytest.raises(ClientError) as cancelled:
        table.transact_write_items(TransactItems=[_take(99)])
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_a_reused_update_expression_applies_its_own_values_every_time(table: Any) -> None:
    # The same expression text, parsed once, on two items with other values each time
    expression = "SET units = units + :d, note = if_not_exists(note, :n) ADD seen :one REMOVE gone"
    table.put_item(TableName=TABLE, Item={**_item("stock", "B", 1), "gone": {"S": "x"}})
    for sk, delta, note in (("A", 2, "first"), ("B", 5, "second"), ("A", -1, "third")):
        table.update_item(
            TableName=TABLE,
            Key=_key("stock", sk),
            UpdateExpression=expression,
            ExpressionAttributeValues={
                ":d": {"N": str(delta)},
                ":n": {"S": note},
                ":one": {"N": "1"},
            },
        )

    a = table.get_item(TableName=TABLE, Key=_key("stock", "A"))["Item"]
    b = table.get_item(TableName=TABLE, Key=_key("stock", "B"))["Item"]
    assert (a["units"], a["note"], a["seen"]) == ({"N": "6"}, {"S": "first"}, {"N": "2"})
    assert (b["units"], b["note"], b["seen"]) == ({"N": "6"}, {"S": "second"}, {"N": "1"})
    assert "gone" not in b


def test_a_bad_update_expression_is_still_refused_every_time(table: Any) -> None:
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            table.update_item(
                TableName=TABLE,
                Key=_key("stock", "A"),
                UpdateExpression="SET units = units + :missing",
                ExpressionAttributeValues={":d": {"N": "1"}},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert table.get_item(TableName=TABLE, Key=_key("stock", "A"))["Item"]["units"] == {"N": "5"}


@pytest.mark.usefixtures("aws_env")
def test_receive_and_delete_keep_sqs_semantics_in_a_deep_queue() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName="deep",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})
            },
        )["QueueUrl"]
        for chunk in range(30):
            sqs.send_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "MessageBody": f"{chunk}-{i}"} for i in range(10)],
            )

        # Received messages are invisible; deleting them (batch, and twice) removes just them
        first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        handles = [m["ReceiptHandle"] for m in first["Messages"]]
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        deleted = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        assert len(deleted["Successful"]) == 10
        assert sqs.delete_message_batch(QueueUrl=url, Entries=entries)["Successful"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert (
            counts["ApproximateNumberOfMessages"],
            counts["ApproximateNumberOfMessagesNotVisible"],
        ) == ("290", "0")

        # A handle no message ever had is refused, as SQS does
        with pytest.raises(ClientError) as refused:
            sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
        assert refused.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"

        # An old handle of a message received again still deletes it (moto's rule)
        again = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=0)
        old = again["Messages"][0]
        newer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=30)
        assert newer["Messages"][0]["MessageId"] == old["MessageId"]
        sqs.delete_message(QueueUrl=url, ReceiptHandle=old["ReceiptHandle"])
        bodies = set()
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
            bodies |= {m["Body"] for m in batch}
        assert len(bodies) == 289
        assert old["Body"] not in bodies

        # Past maxReceiveCount a message moves to the DLQ; its old handle then no longer
        # deletes it from the source queue, the DLQ's own handle deletes it there
        sqs.send_message(QueueUrl=url, MessageBody="poison")
        handle = ""
        for _ in range(2):
            got = sqs.receive_message(QueueUrl=url, VisibilityTimeout=0)["Messages"][0]
            assert got["Body"] == "poison"
            handle = got["ReceiptHandle"]
        assert sqs.receive_message(QueueUrl=url).get("Messages") is None
        with pytest.raises(ClientError) as gone:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=handle)
        assert gone.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
        (dead,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
        assert dead["Body"] == "poison"
        sqs.delete_message(QueueUrl=dlq, ReceiptHandle=dead["ReceiptHandle"])
        counts = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["All"])["Attributes"]
        assert counts["ApproximateNumberOfMessagesNotVisible"] == "0"
        assert counts["ApproximateNumberOfMessages"] == "0"


def test_a_reused_condition_is_judged_against_each_item_and_its_own_values(
    table: Any,
) -> None:
    # The same condition text with the same and with other values, on items that differ
    condition = "#u >= :q AND attribute_exists(pk)"
    table.put_item(TableName=TABLE, Item=_item("stock", "B", 1))
    outcomes = []
    for sk, units in (("A", 3), ("B", 3), ("A", 3), ("A", 1), ("B", 1), ("B", 1)):
        try:
            table.update_item(
                TableName=TABLE,
                Key=_key("stock", sk),
                UpdateExpression="SET #u = #u - :q",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#u": "units"},
                ExpressionAttributeValues={":q": {"N": str(units)}},
            )
            outcomes.append("taken")
        except ClientError as error:
            outcomes.append(error.response["Error"]["Code"])

    assert outcomes == [
        "taken",  # A: 5 -> 2
        "ConditionalCheckFailedException",  # B has 1
        "ConditionalCheckFailedException",  # A has 2 now: the same parse, another item state
        "taken",  # A: 2 -> 1
        "taken",  # B: 1 -> 0
        "ConditionalCheckFailedException",  # B has 0
    ]
    assert _units(table) == 1


def test_a_bad_condition_is_still_refused_every_time(table: Any) -> None:
    def attempt(condition: str, names: dict[str, str], values: dict[str, Any]) -> str:
        extra: dict[str, Any] = {}
        if names:
            extra["ExpressionAttributeNames"] = names
        if values:
            extra["ExpressionAttributeValues"] = values
        try:
            table.put_item(
                TableName=TABLE, Item=_item("stock", "C", 1), ConditionExpression=condition, **extra
            )
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        except (ValueError, KeyError) as error:  # moto raises these in-process for bad syntax
            return type(error).__name__
        return "written"

    bad = [
        ("attribute_not_exists(pk)", {"#never": "units"}, {}),  # a name it does not use
        ("units > :q AND", {}, {":q": {"N": "1"}}),  # not an expression
        ("#u > :q", {}, {":q": {"N": "1"}}),  # a name it does not define
    ]
    first = [attempt(*case) for case in bad]
    again = [attempt(*case) for case in bad]

    assert first == again
    assert "written" not in first
    assert first[0] == "ValidationException"
    assert "Item" not in table.get_item(TableName=TABLE, Key=_key("stock", "C"))


@pytest.mark.parametrize(
    ("expression", "values", "message"),
    [
        ("SET pk = :s", {":s": {"S": "x"}}, "part of the key"),
        ("SET units = :a, units = :b", {":a": {"N": "1"}, ":b": {"N": "2"}}, "overlap"),
        ("SET units = absent + :d", {":d": {"N": "1"}}, "does not exist in the item"),
        ("SET units = missing + :d", {":d": {"N": "1"}}, "reserved keyword"),
        ("SET units = units + :s", {":s": {"S": "x"}}, "operand type"),
        ("SET tags = list_append(nothing, :l)", {":l": {"L": []}}, "does not exist in the item"),
        ("SET units = :e", {":e": {"S": ""}}, None),
    ],
)
def test_update_validation_still_refuses_what_moto_refuses(
    table: Any, expression: str, values: dict[str, Any], message: str | None
) -> None:
    # The validator's walks dispatch by node type once; each check must still fire
    def update() -> None:
        table.update_item(
            TableName=TABLE,
            Key=_key("stock", "A"),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
        )

    for _ in range(2):
        if message is None:  # an empty string outside the keys is allowed
            update()
            continue
        with pytest.raises(ClientError) as refused:
            update()
        assert refused.value.response["Error"]["Code"] == "ValidationException"
        assert message in refused.value.response["Error"]["Message"]
    item = table.get_item(TableName=TABLE, Key=_key("stock", "A"))["Item"]
    assert item["units"] == ({"S": ""} if message is None else {"N": "5"})


def test_update_validation_resolves_paths_functions_and_arithmetic(table: Any) -> None:
    # A map path needs its map: moto refuses SET on a missing parent, as DynamoDB does
    with pytest.raises(ClientError):
        table.update_item(
            TableName=TABLE,
            Key=_key("stock", "A"),
            UpdateExpression="SET #m.#k = :one",
            ExpressionAttributeNames={"#m": "meta", "#k": "k"},
            ExpressionAttributeValues={":one": {"N": "1"}},
        )
    table.update_item(
        TableName=TABLE,
        Key=_key("stock", "A"),
        UpdateExpression="SET #m = :map",
        ExpressionAttributeNames={"#m": "meta"},
        ExpressionAttributeValues={":map": {"M": {}}},
    )
    for _ in range(2):
        table.update_item(
            TableName=TABLE,
            Key=_key("stock", "A"),
            UpdateExpression=(
                "SET #m.#k = if_not_exists(#m.#k, :zero) + :one, "
                "tags = list_append(if_not_exists(tags, :empty), :t), units = units - :two "
                "ADD seen :s REMOVE nothing_there"
            ),
            ExpressionAttributeNames={"#m": "meta", "#k": "k"},
            ExpressionAttributeValues={
                ":zero": {"N": "0"},
                ":one": {"N": "1"},
                ":two": {"N": "2"},
                ":empty": {"L": []},
                ":t": {"L": [{"S": "a"}]},
                ":s": {"SS": ["x"]},
            },
        )
    item = table.get_item(TableName=TABLE, Key=_key("stock", "A"))["Item"]
    assert item["meta"] == {"M": {"k": {"N": "2"}}}
    assert item["tags"] == {"L": [{"S": "a"}, {"S": "a"}]}
    assert item["units"] == {"N": "1"}
    assert item["seen"] == {"SS": ["x"]}


@pytest.fixture
def bus(aws_env: None) -> Iterator[tuple[Any, Any, dict[str, str]]]:
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        events.create_event_bus(Name="shop")
        queues: dict[str, str] = {}
        patterns = {
            "orders": {"detail-type": ["OrderPlaced"]},
            "big": {"detail": {"total": [{"numeric": [">", 100]}]}},
            "storewire": {"source": [{"prefix": "storewire."}]},
            "never": {"detail-type": ["Nothing"]},
            "shaped": {"detail-type": ["OrderPlaced"]},
        }
        for name, pattern in patterns.items():
            url = sqs.create_queue(QueueName=name)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(Name=name, EventBusName="shop", EventPattern=json.dumps(pattern))
            target: dict[str, Any] = {"Id": "q", "Arn": arn}
            if name == "shaped":  # a target that reshapes the event takes moto's own path
                target["InputTransformer"] = {
                    "InputPathsMap": {"o": "$.detail.order"},
                    "InputTemplate": '{"order": "<o>"}',
                }
            events.put_targets(Rule=name, EventBusName="shop", Targets=[target])
            queues[name] = url
        yield events, sqs, queues


def _entry(source: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "EventBusName": "shop",
        "Source": source,
        "DetailType": "OrderPlaced",
        "Detail": detail,
        **extra,
    }


def _bodies(sqs: Any, url: str) -> list[dict[str, Any]]:
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in got]


def test_put_events_reaches_each_matching_rule_once_with_the_whole_envelope(
    bus: tuple[Any, Any, dict[str, str]],
) -> None:
    events, sqs, queues = bus
    answer = events.put_events(
        Entries=[
            _entry(
                "storewire.ingest",
                json.dumps({"order": "1", "total": 150}),
                Resources=["arn:aws:x"],
            ),
            _entry("other", json.dumps({"order": "2", "total": 5})),
        ]
    )
    assert answer["FailedEntryCount"] == 0
    first_id, second_id = (entry["EventId"] for entry in answer["Entries"])

    orders = _bodies(sqs, queues["orders"])
    assert sorted(m["detail"]["order"] for m in orders) == ["1", "2"]
    (big,) = _bodies(sqs, queues["big"])
    (ours,) = _bodies(sqs, queues["storewire"])
    assert big == ours
    assert big["id"] == first_id
    assert big["id"] != second_id
    assert (big["source"], big["detail-type"], big["resources"]) == (
        "storewire.ingest",
        "OrderPlaced",
        ["arn:aws:x"],
    )
    assert big["detail"] == {"order": "1", "total": 150}
    assert big["region"] == "us-east-1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", big["time"])
    assert sorted(_bodies(sqs, queues["shaped"]), key=str) == [{"order": "1"}, {"order": "2"}]
    assert _bodies(sqs, queues["never"]) == []


def test_put_events_still_answers_bad_entries_as_moto_does(
    bus: tuple[Any, Any, dict[str, str]],
) -> None:
    events, sqs, queues = bus
    answer = events.put_events(Entries=[_entry("s", "{"), _entry("s", json.dumps({"order": "3"}))])
    assert answer["FailedEntryCount"] == 1
    assert answer["Entries"][0]["ErrorCode"] == "MalformedDetail"
    assert [m["detail"] for m in _bodies(sqs, queues["orders"])] == [{"order": "3"}]
