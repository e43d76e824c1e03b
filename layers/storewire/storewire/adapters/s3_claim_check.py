"""`ClaimCheckStore` on S3: the data of events too large for the bus.

Stored at ``claim-checks/{event_id}.json``; the event travels with
``claim_check = {bucket, key, sha256, size}`` and consumers `load` (verified) the data.
"""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from storewire.domain.events import ClaimCheck
from storewire.errors import PermanentError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client


class S3ClaimCheckStore:
    """Puts and loads claim-checked event data in one bucket."""

    def __init__(self, client: S3Client, bucket_name: str) -> None:
        self._client = client
        self._bucket = bucket_name

    def put(self, key: str, body: bytes) -> ClaimCheck:
        digest = hashlib.sha256(body).hexdigest()
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                ChecksumSHA256=_b64_sha256(body),
            )
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"claim check put failed: {error}") from error
        return ClaimCheck(bucket=self._bucket, key=key, sha256=digest, size=len(body))

    def load(self, claim_check: ClaimCheck) -> bytes:
        try:
            response = self._client.get_object(Bucket=claim_check.bucket, Key=claim_check.key)
            body = response["Body"].read()
        except (ClientError, BotoCoreError) as error:
            raise RetryableError(f"claim check load failed: {error}") from error
        if len(body) != claim_check.size or hashlib.sha256(body).hexdigest() != claim_check.sha256:
            raise PermanentError(f"claim check {claim_check.key} does not match its reference")
        return body


def _b64_sha256(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()
