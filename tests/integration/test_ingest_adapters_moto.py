"""The ingestion adapters one by one against moto: the rules the handler test relies on."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from storewire.adapters.dynamodb_dedupe import DynamoDBDedupeStore
from storewire.adapters.s3_claim_check import S3ClaimCheckStore
from storewire.adapters.secrets import SecretsManagerProvider
from storewire.errors import PermanentError, RetryableError
from storewire.ports import ClaimOutcome

pytestmark = pytest.mark.integration

TABLE = "dedupe"
KEY = "webhook#shopify#d-1"


class Clock:
    def __init__(self, now: float = 1_795_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def store(clock: Clock) -> DynamoDBDedupeStore:
    return DynamoDBDedupeStore(boto3.client("dynamodb"), TABLE, clock=clock)


def test_given_a_claimed_delivery_when_claimed_again_then_in_progress_until_the_lease_ends(
    aws: None,
) -> None:
    clock = Clock()
    first, second = store(clock), store(clock)

    assert first.claim(KEY, 259200) is ClaimOutcome.CLAIMED
    assert second.claim(KEY, 259200) is ClaimOutcome.IN_PROGRESS
    clock.now += 31
    assert second.claim(KEY, 259200) is ClaimOutcome.CLAIMED


def test_given_a_completed_delivery_when_claimed_again_then_duplicate_even_after_the_lease(
    aws: None,
) -> None:
    clock = Clock()
    dedupe = store(clock)
    dedupe.claim(KEY, 259200)
    dedupe.complete(KEY, ["evt_a", "evt_b"])
    clock.now += 3600

    assert dedupe.claim(KEY, 259200) is ClaimOutcome.DUPLICATE
    item = boto3.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": KEY}})["Item"]
    assert item["status"]["S"] == "done"
    assert int(item["expires_at"]["N"]) == int(clock.now - 3600) + 259200
    assert [v["S"] for v in item["event_ids"]["L"]] == ["evt_a", "evt_b"]


def test_given_a_released_claim_when_claimed_again_then_it_is_claimed_at_once(aws: None) -> None:
    dedupe = store(Clock())
    dedupe.claim(KEY, 259200)

    dedupe.release(KEY)

    assert dedupe.claim(KEY, 259200) is ClaimOutcome.CLAIMED


def test_given_a_lease_taken_over_when_the_slow_attempt_releases_then_the_new_claim_stays(
    aws: None,
) -> None:
    clock = Clock()
    slow, fast = store(clock), store(clock)
    slow.claim(KEY, 259200)
    clock.now += 31
    fast.claim(KEY, 259200)

    slow.release(KEY)  # must not delete the claim `fast` holds

    assert store(clock).claim(KEY, 259200) is ClaimOutcome.IN_PROGRESS


def test_given_a_missing_table_when_claimed_then_retryable(aws: None) -> None:
    dedupe = DynamoDBDedupeStore(boto3.client("dynamodb"), "no-such-table")

    with pytest.raises(RetryableError):
        dedupe.claim(KEY, 259200)


def test_given_stored_data_when_loaded_then_it_is_verified(aws: None) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="claims")
    claims = S3ClaimCheckStore(s3, "claims")
    ref = claims.put("claim-checks/evt_1.json", b'{"lines": []}')

    assert claims.load(ref) == b'{"lines": []}'
    s3.put_object(Bucket="claims", Key=ref.key, Body=b'{"lines": [1]}')
    with pytest.raises(PermanentError):
        claims.load(ref)


def test_given_a_cached_secret_when_forced_twice_quickly_then_it_is_fetched_once_more(
    aws: None,
) -> None:
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="s", SecretString=json.dumps({"current": "a"}))["ARN"]
    clock = Clock(0.0)
    provider = SecretsManagerProvider(client, clock=clock)

    assert provider.get(arn) == {"current": "a"}
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"current": "b"}))
    assert provider.get(arn) == {"current": "a"}  # cached
    assert provider.get(arn, force_fetch=True) == {"current": "b"}
    client.put_secret_value(SecretId=arn, SecretString=json.dumps({"current": "c"}))
    assert provider.get(arn, force_fetch=True) == {"current": "b"}  # rate-limited
    clock.now += 11
    assert provider.get(arn, force_fetch=True) == {"current": "c"}
