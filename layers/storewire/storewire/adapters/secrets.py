"""`SecretProvider` on Secrets Manager through Powertools parameters (cached, JSON).

A rotation keeps the old value as `previous`, so webhooks signed with it still verify. The
ingestion service asks for a forced fetch when a signature fails against the cached value;
forced fetches are rate-limited so bad signatures cannot hammer Secrets Manager.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities import parameters

from storewire.errors import ConfigurationError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager.client import SecretsManagerClient

DEFAULT_MAX_AGE_SECONDS = 300
MIN_FORCED_FETCH_INTERVAL_SECONDS = 10.0


class SecretsManagerProvider:
    """Reads JSON secrets, caching each for `max_age` seconds."""

    def __init__(
        self,
        client: SecretsManagerClient,
        *,
        max_age: int = DEFAULT_MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._provider = parameters.SecretsProvider(boto3_client=client)
        self._max_age = max_age
        self._clock = clock
        self._last_forced: dict[str, float] = {}

    def get(self, secret_id: str, *, force_fetch: bool = False) -> dict[str, str]:
        if force_fetch:
            now = self._clock()
            last = self._last_forced.get(secret_id)
            if last is not None and now - last < MIN_FORCED_FETCH_INTERVAL_SECONDS:
                force_fetch = False
            else:
                self._last_forced[secret_id] = now
        try:
            value: Any = self._provider.get(
                secret_id, transform="json", max_age=self._max_age, force_fetch=force_fetch
            )
        except parameters.exceptions.TransformParameterError as error:
            raise ConfigurationError(f"secret {secret_id} is not JSON") from error
        except parameters.exceptions.GetParameterError as error:
            raise RetryableError(f"could not read secret {secret_id}") from error
        if not isinstance(value, dict):
            raise ConfigurationError(f"secret {secret_id} is not a JSON object")
        return {str(k): v for k, v in value.items() if isinstance(v, str)}
