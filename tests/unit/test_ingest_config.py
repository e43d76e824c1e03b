from __future__ import annotations

import pytest
from storewire.config import IngestSettings
from storewire.errors import ConfigurationError

ENV = {
    "EVENT_BUS_NAME": "storewire-dev",
    "DEDUPE_TABLE_NAME": "storewire-dev-WebhookDedupeTable",
    "CLAIM_CHECK_BUCKET_NAME": "storewire-dev-claim-checks",
    "SHOPIFY_WEBHOOK_SECRET_ID": "arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
}


def test_given_the_template_environment_when_read_then_defaults_fill_the_rest() -> None:
    settings = IngestSettings.from_env(ENV)

    assert settings.event_bus_name == "storewire-dev"
    assert settings.dedupe_ttl_seconds == 259200
    assert settings.max_body_bytes == 4194304
    assert settings.max_age_seconds == 259200
    assert settings.secret_ids() == {"shopify": ENV["SHOPIFY_WEBHOOK_SECRET_ID"]}


def test_given_missing_variables_when_read_then_the_error_names_each_of_them() -> None:
    with pytest.raises(ConfigurationError) as caught:
        IngestSettings.from_env({"EVENT_BUS_NAME": "b", "DEDUPE_TABLE_NAME": ""})

    for name in ("DEDUPE_TABLE_NAME", "CLAIM_CHECK_BUCKET_NAME", "SHOPIFY_WEBHOOK_SECRET_ID"):
        assert name in caught.value.message


def test_given_a_dedupe_ttl_under_48_hours_when_read_then_it_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="DEDUPE_TTL_SECONDS"):
        IngestSettings.from_env({**ENV, "DEDUPE_TTL_SECONDS": "3600"})


def test_given_explicit_limits_when_read_then_they_are_used() -> None:
    settings = IngestSettings.from_env(
        {
            **ENV,
            "DEDUPE_TTL_SECONDS": "172800",
            "MAX_BODY_BYTES": "1024",
            "WEBHOOK_MAX_AGE_SECONDS": "0",
        }
    )

    assert (settings.dedupe_ttl_seconds, settings.max_body_bytes, settings.max_age_seconds) == (
        172800,
        1024,
        0,
    )
