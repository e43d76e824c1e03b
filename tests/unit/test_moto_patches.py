"""The emulator's moto speed-ups keep DynamoDB's transaction semantics: all or nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from storewire_local.emulator import moto_patches

TABLE = "patched"


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    moto_patches.apply()
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
