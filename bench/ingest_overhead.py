"""The warm ingestion path against a floor of the same AWS calls issued bare.

`python -m bench.ingest_overhead [--out FILE]`, in its own process (moto's `mock_aws` patches
botocore process-wide). Under `mock_aws`: the dedupe table, the bus, the claim-check bucket
and the webhook secret, named in the environment template.yaml gives WebhookIngestFunction
(its LOG_LEVEL and Powertools settings included). The path is the real handler module,
functions/webhook_ingest/app.py, with its real adapters: `lambda_handler(event, context)` on a
signed `orders/create` API Gateway v2 event, each with a new webhook id (signature check,
staleness, dedupe claim, normalise into pydantic events, PutEvents, dedupe complete, the log
line). The floor replays, with bare boto3 clients' public methods, exactly the requests one
handler call made (recorded from botocore: the conditional PutItem, PutEvents, the
UpdateItem), with a new key each time. Rounds alternate the two sides; each side's figure is
its best round's mean.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHOP = "storewire-bench.myshopify.com"
SECRET = "shpss_bench_secret"
BUDGET = 1.2


class Context:
    aws_request_id = "bench"
    function_name = "WebhookIngestFunction"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


def _event(body: bytes) -> dict[str, Any]:
    from storewire_local.signing import shopify_headers

    headers = shopify_headers(
        "orders/create", body, secret=SECRET, shop=SHOP, webhook_id=str(uuid.uuid4())
    )
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.update({"content-length": str(len(body)), "user-agent": "Shopify-Captain-Hook"})
    return {
        "version": "2.0",
        "routeKey": "POST /webhooks/{source}",
        "rawPath": "/webhooks/shopify",
        "rawQueryString": "",
        "headers": lowered,
        "pathParameters": {"source": "shopify"},
        "requestContext": {
            "http": {"method": "POST", "path": "/webhooks/shopify", "sourceIp": "127.0.0.1"},
            "routeKey": "POST /webhooks/{source}",
            "stage": "$default",
            "requestId": str(uuid.uuid4()),
        },
        "body": body.decode(),
        "isBase64Encoded": False,
    }


def _setup(env: dict[str, str]) -> None:
    import boto3

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=env["DEDUPE_TABLE_NAME"],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    boto3.client("s3").create_bucket(Bucket=env["CLAIM_CHECK_BUCKET_NAME"])
    boto3.client("events").create_event_bus(Name=env["EVENT_BUS_NAME"])
    secrets = boto3.client("secretsmanager")
    for key in (
        "SHOPIFY_WEBHOOK_SECRET_ID",
        "STRIPE_WEBHOOK_SECRET_ID",
        "EASYPOST_WEBHOOK_SECRET_ID",
    ):
        if env.get(key):
            env[key] = secrets.create_secret(
                Name=f"bench-{key.lower()}",
                SecretString=json.dumps({"current": SECRET, "previous": ""}),
            )["ARN"]


def _record_calls(call: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """The (service, operation, params) of every AWS request `call()` makes."""
    from botocore.client import BaseClient

    recorded: list[tuple[str, str, dict[str, Any]]] = []
    original = BaseClient._make_api_call

    def spy(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        recorded.append(
            (self.meta.service_model.service_name, operation, json.loads(json.dumps(params)))
        )
        return original(self, operation, params)

    BaseClient._make_api_call = spy  # type: ignore[method-assign]
    try:
        call()
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
    return recorded


OUR_CODE = ("/layers/storewire/", "/functions/", "aws_lambda_powertools/", "pydantic/")
CALLS_AWS = {
    "lambda_handler",
    "ingest_webhook",
    "claim",
    "complete",
    "publish",
    "_default_deps",
    "_wire",
}


def _profile(call: Any, calls: int) -> dict[str, Any]:
    """Where a warm webhook's time goes: inside the AWS client (botocore + moto) or outside it,
    and the slowest functions of our code and its libraries that make no AWS call (cumulative)."""
    import cProfile
    import pstats

    from botocore.client import BaseClient

    inside = [0.0]
    original = BaseClient._make_api_call

    def timed(self: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return original(self, operation, params)
        finally:
            inside[0] += time.perf_counter() - started

    BaseClient._make_api_call = timed  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        call()
        total = time.perf_counter() - started
    finally:
        BaseClient._make_api_call = original  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    profiler.enable()
    call()
    profiler.disable()
    rows = []
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    for (filename, line, name), (_, _, _, cumtime, _) in stats.items():
        path = filename.replace("\\", "/")
        if any(part in path for part in OUR_CODE) and name not in CALLS_AWS:
            short = path.split("/layers/storewire/")[-1].split("site-packages/")[-1]
            rows.append(
                {"function": f"{short}:{line}({name})", "cumulative_ms": cumtime * 1000 / calls}
            )
    rows.sort(key=lambda r: -r["cumulative_ms"])
    return {
        "total_ms": total * 1000 / calls,
        "inside_aws_client_ms": inside[0] * 1000 / calls,
        "outside_aws_client_ms": (total - inside[0]) * 1000 / calls,
        "top_functions": rows[:12],
    }


def run(rounds: int = 15, per_round: int = 30, seed: int = 7) -> dict[str, Any]:
    from moto import mock_aws
    from storewire_local.emulator.stack import Stack

    spec = Stack(ROOT / "template.yaml").functions()["WebhookIngestFunction"]
    env = {k: str(v) for k, v in spec.environment.items()}
    env.update(
        EVENT_BUS_NAME="bench-bus",
        DEDUPE_TABLE_NAME="bench-dedupe",
        CLAIM_CHECK_BUCKET_NAME="bench-claims",
    )
    for name in (
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_CONFIG_FILE",
        "AWS_SHARED_CREDENTIALS_FILE",
    ):
        os.environ.pop(name, None)
    os.environ.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_LAMBDA_FUNCTION_NAME="WebhookIngestFunction",
    )
    raw = json.loads((ROOT / "events" / "payloads" / "shopify" / "orders_create.json").read_text())
    body = json.dumps(raw, separators=(",", ":")).encode()
    rng = random.Random(seed)
    with mock_aws():
        _setup(env)
        os.environ.update(env)
        sys.path[:0] = [str(spec.code_dir), *map(str, spec.layer_dirs)]
        app = importlib.import_module(spec.handler.rpartition(".")[0])
        context = Context()
        first = app.lambda_handler(_event(body), context)  # cold: wires adapters, reads the secret
        assert first["statusCode"] == 200, first
        template_calls = _record_calls(lambda: app.lambda_handler(_event(body), context))
        put = next(p for s, op, p in template_calls if op == "PutItem")
        old_key = put["Item"]["pk"]["S"]

        import boto3
        from botocore import xform_name

        bare = {service: boto3.client(service) for service, _, _ in template_calls}

        # the floor's json round-trip of params is part of neither side's cost: pre-build.
        # Each call goes through the client's public method (`put_item(**params)`), as any
        # code issues it: botocore's per-call context wrapper is part of a bare call too.
        def prepared(n: int) -> list[tuple[Any, dict[str, Any]]]:
            new_key = f"{old_key}-floor-{n}"
            return [
                (
                    getattr(bare[s], xform_name(op)),
                    json.loads(json.dumps(p).replace(json.dumps(old_key)[1:-1], new_key)),
                )
                for s, op, p in template_calls
            ]

        handler_best = floor_best = float("inf")
        handler_means: list[float] = []
        floor_means: list[float] = []
        statuses: dict[int, int] = {}
        counter = 0
        for round_index in range(rounds):
            events = [_event(body) for _ in range(per_round)]
            floors = [prepared(counter + i) for i in range(per_round)]
            counter += per_round
            sides = ["handler", "floor"]
            if rng.random() < 0.5 or round_index % 2:
                sides.reverse()
            for side in sides:
                started = time.perf_counter()
                if side == "handler":
                    for event in events:
                        answer = app.lambda_handler(event, context)
                        statuses[answer["statusCode"]] = statuses.get(answer["statusCode"], 0) + 1
                    mean = (time.perf_counter() - started) / per_round
                    handler_means.append(mean)
                    handler_best = min(handler_best, mean)
                else:
                    for calls in floors:
                        for method, params in calls:
                            method(**params)
                    mean = (time.perf_counter() - started) / per_round
                    floor_means.append(mean)
                    floor_best = min(floor_best, mean)
        profile = _profile(
            lambda: [app.lambda_handler(_event(body), context) for _ in range(30)], 30
        )
    return {
        "profile_ms_per_webhook": profile,
        "rounds": rounds,
        "per_round": per_round,
        "aws_calls_per_webhook": [f"{s}.{op}" for s, op, _ in template_calls],
        "handler_best_ms": handler_best * 1000,
        "floor_best_ms": floor_best * 1000,
        "handler_means_ms": [m * 1000 for m in handler_means],
        "floor_means_ms": [m * 1000 for m in floor_means],
        "ratio": handler_best / floor_best,
        "paired_median_ratio": statistics.median(
            h / f for h, f in zip(handler_means, floor_means, strict=True)
        ),
        "budget_ratio": BUDGET,
        "within_budget": handler_best / floor_best <= BUDGET,
        "statuses": statuses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=30)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    real_stdout = sys.stdout
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the handler's log lines, as CloudWatch would take them
    try:
        result = run(args.rounds, args.per_round)
    finally:
        sys.stdout.close()
        sys.stdout = real_stdout
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
