"""`PrivacyStore` on DynamoDB and S3: every table and claim-check object, as plain values.

Tables are given by role (`orders`, `crm`, `labels`, `inventory`, `dedupe`, `channels`) and
read with paginated Scans; items come back deserialised (`boto3.dynamodb.types`), so the
privacy service works on plain dicts and strings. A rewrite is a `PutItem` conditioned on the
item's `version` when it has one (the order and CRM stores' optimistic lock), so a consumer
that wrote meanwhile makes the rewrite fail and the request is retried. Objects are listed
with their versions (the bucket is versioned): erasing one deletes every version.

The order record is stored compressed (``record_z``, see `storewire.adapters.dynamodb_orders`):
it is handed to the service unpacked, as the JSON string ``record``, so the search and the
redaction see inside it, and packed again when rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from storewire.adapters.dynamodb_orders import (
    PACKED_RECORD,
    pack_record_json,
    unpack_record_json,
)
from storewire.errors import RetryableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client


class AwsPrivacyStore:
    """The stack's tables (by role) and its claim-check bucket."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        s3: S3Client,
        tables: Mapping[str, str],
        bucket: str,
    ) -> None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        self._dynamodb = dynamodb
        self._s3 = s3
        self._tables = {role: name for role, name in tables.items() if name}
        self.bucket = bucket
        self._deserializer = TypeDeserializer()
        self._serializer = TypeSerializer()
        self.key_attributes: dict[str, tuple[str, ...]] = {}

    def _keys(self, role: str) -> tuple[str, ...]:
        if role not in self.key_attributes:
            try:
                table = self._dynamodb.describe_table(TableName=self._tables[role])["Table"]
            except (ClientError, BotoCoreError) as error:
                raise RetryableError(f"describe {role} table failed: {error}") from error
            self.key_attributes[role] = tuple(k["AttributeName"] for k in table["KeySchema"])
        return self.key_attributes[role]

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for role, name in sorted(self._tables.items()):
            self._keys(role)
            paginator = self._dynamodb.get_paginator("scan")
            try:
                for page in paginator.paginate(TableName=name, ConsistentRead=True):
                    for raw in page.get("Items", []):
                        item = {k: self._deserializer.deserialize(v) for k, v in raw.items()}
                        packed = item.pop(PACKED_RECORD, None)
                        if packed is not None:
                            item["record"] = unpack_record_json(bytes(packed))
                        yield role, item
            except (ClientError, BotoCoreError) as error:
                raise RetryableError(f"scan of the {role} table failed: {error}") from error

    def _serialise(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        record = item.get("record")
        if table == "orders" and isinstance(record, str):
            item = {k: v for k, v in item.items() if k != "record"}
            item[PACKED_RECORD] = pack_record_json(record)
        return {k: self._serializer.serialize(v) for k, v in item.items() if v is not None}

    def replace(self, table: str, item: dict[str, Any], before: dict[str, Any]) -> None:
        kwargs: dict[str, Any] = {}
        if "version" in before:
            kwargs = {
                "ConditionExpression": "#v = :v",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":v": self._serializer.serialize(before["version"])},
            }
        try:
            self._dynamodb.put_item(
                TableName=self._tables[table], Item=self._serialise(table, item), **kwargs
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"rewrite in the {table} table failed: {error}") from error

    def delete(self, table: str, item: dict[str, Any]) -> None:
        key = {k: self._serializer.serialize(item[k]) for k in self._keys(table)}
        try:
            self._dynamodb.delete_item(TableName=self._tables[table], Key=key)
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"delete in the {table} table failed: {error}") from error

    def objects(self) -> Iterator[tuple[str, bytes]]:
        if not self.bucket:
            return
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket):
                for entry in page.get("Contents", []):
                    body = self.get_object(entry["Key"])
                    if body is not None:
                        yield entry["Key"], body
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"listing the claim-check bucket failed: {error}") from error

    def get_object(self, key: str) -> bytes | None:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise RetryableError(f"reading {key} failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"reading {key} failed: {error}") from error

    def erase_object(self, key: str) -> int:
        deleted = 0
        try:
            paginator = self._s3.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=key):
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    if entry["Key"] != key:
                        continue
                    self._s3.delete_object(
                        Bucket=self.bucket, Key=key, VersionId=entry["VersionId"]
                    )
                    deleted += 1
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"erasing {key} failed: {error}") from error
        return deleted

    def put_report(self, key: str, body: bytes) -> bool:
        try:
            self._s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise RetryableError(f"storing the report failed: {error}") from error
        except BotoCoreError as error:
            raise RetryableError(f"storing the report failed: {error}") from error
        return True
