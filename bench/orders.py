"""AWS requests and cost per order, end-to-end throughput and HTTP latency, on the emulator.

`python -m bench.orders [--orders N] [--out FILE]` starts the emulator on the real
template.yaml (with its third-party fakes), seeds stock (and channel listings, when the
template has them), then runs the default mix as a storefront and a gateway would send it, in
three waves (each drained before the next, so a payment never overtakes its order):

1. every order placed (`orders/create`), a quarter of them preceded by `customers/create`;
2. 60 % paid through Shopify (`orders/paid`; the Admin API fake holds every order, as Shopify
   does before it sends the webhooks, those paid at Shopify with their transactions),
   30 % through Stripe (`payment_intent.succeeded` for an intent paid at the Stripe fake),
   10 % cancelled unpaid (`orders/cancelled`);
3. 5 % of the paid orders refunded with restock (`refunds/create`), 10 % `customers/update`.

In every wave 5 % of the deliveries are sent twice with the same webhook id (Shopify retries)
and 2 % of Stripe events twice with the same event id. The moto-side counter (bench.counting)
is on from the first webhook to the graph idle; the workers are started before it. Then a
steady closed-loop load (threads posting `orders/create`) measures the HTTP path's latency.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from . import prices
from .counting import Tally, install

ROOT = Path(__file__).resolve().parents[1]
PAYLOADS = ROOT / "events" / "payloads"
SHOP = "storewire-bench.myshopify.com"
SHOPIFY_SECRET = "shpss_bench_secret"
STRIPE_SECRET = "whsec_storewire_dev_secret"
STRIPE_KEY = "sk_test_storewire_dev"
SKUS = ("SW-TEE-BLK-M", "SW-HOOD-GRY-L", "SW-MUG-WHT")
REPORT = re.compile(rb"REPORT RequestId: \S+\s+Duration: ([0-9.]+) ms")
CONCURRENCY = 4
WARMUP_ORDERS = 6


def _sample(topic: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(
        (PAYLOADS / "shopify" / f"{topic.replace('/', '_')}.json").read_text()
    )
    return raw


def _compact(raw: Any) -> bytes:
    return json.dumps(raw, separators=(",", ":")).encode()


class Mix:
    """Builds the deliveries of the default mix; deterministic for a seed."""

    def __init__(self, orders: int, seed: int, stripe_url: str, admin_url: str) -> None:
        self.rng = random.Random(seed)
        self.stripe_url = stripe_url
        self.admin_url = admin_url
        base = 7_100_000_000_000 + seed * 100_000
        self.externals = [base + i for i in range(orders)]
        self.customers = {
            e: 8_100_000_000_000 + seed * 100_000 + i for i, e in enumerate(self.externals)
        }
        shuffled = list(self.externals)
        self.rng.shuffle(shuffled)
        cut1, cut2 = round(orders * 0.6), round(orders * 0.9)
        self.paid_shopify = shuffled[:cut1]
        self.paid_stripe = shuffled[cut1:cut2]
        self.cancelled = shuffled[cut2:]
        paid = self.paid_shopify + self.paid_stripe
        self.refunded = self.rng.sample(paid, max(1, round(orders * 0.05))) if paid else []
        self.new_customers = set(self.rng.sample(self.externals, round(orders * 0.25)))
        self.updated_customers = self.rng.sample(self.externals, round(orders * 0.10))
        self.created = _sample("orders/create")
        self.total_minor = round(float(self.created["total_price"]) * 100)

    def canonical(self, external: int) -> str:
        return f"shopify:{SHOP}:{external}"

    def _shopify(self, topic: str, raw: dict[str, Any]) -> list[tuple[str, bytes, dict[str, str]]]:
        from storewire_local.signing import shopify_headers

        body = _compact(raw)
        webhook_id = str(uuid.uuid4())
        headers = shopify_headers(
            topic, body, secret=SHOPIFY_SECRET, shop=SHOP, webhook_id=webhook_id
        )
        times = 2 if self.rng.random() < 0.05 else 1
        return [("shopify", body, headers)] * times

    def _customer(self, topic: str, external: int) -> dict[str, Any]:
        raw = _sample(topic)
        raw["id"] = self.customers[external]
        raw["email"] = f"buyer{self.customers[external]}@example.com"
        return raw

    def _order(self, external: int) -> dict[str, Any]:
        raw = json.loads(json.dumps(self.created))
        number = external % 1_000_000
        raw.update(id=external, name=f"#{number}", order_number=number)
        if isinstance(raw.get("customer"), dict):
            raw["customer"]["id"] = self.customers[external]
            raw["customer"]["email"] = f"buyer{self.customers[external]}@example.com"
        raw["email"] = raw["contact_email"] = f"buyer{self.customers[external]}@example.com"
        return raw

    def wave_placed(self, http: httpx.Client) -> list[tuple[str, bytes, dict[str, str]]]:
        deliveries = []
        paid_at_shopify = set(self.paid_shopify)
        for external in self.externals:
            # Shopify holds the order before it sends its webhooks: label creation reads its
            # fulfillment orders, payment confirmation its transactions (paid at Shopify)
            status = "paid" if external in paid_at_shopify else "pending"
            http.post(
                f"{self.admin_url}/_fake/orders",
                json={**self._order(external), "financial_status": status},
            ).raise_for_status()
            if external in self.new_customers:
                deliveries += self._shopify(
                    "customers/create", self._customer("customers/create", external)
                )
            deliveries += self._shopify("orders/create", self._order(external))
        return deliveries

    def wave_paid(self, http: httpx.Client) -> list[tuple[str, bytes, dict[str, str]]]:
        from storewire_local.fakes.stripe import build_event, sign_payload

        deliveries = []
        paid = _sample("orders/paid")
        for external in self.paid_shopify:
            raw = {**paid, "id": external, "name": f"#{external % 1_000_000}"}
            deliveries += self._shopify("orders/paid", raw)
        for external in self.paid_stripe:
            order_id = self.canonical(external)
            answer = http.post(
                f"{self.stripe_url}/v1/payment_intents",
                headers={
                    "Authorization": f"Bearer {STRIPE_KEY}",
                    "Idempotency-Key": f"pay-{order_id}",
                },
                data={
                    "amount": str(self.total_minor),
                    "currency": "usd",
                    "confirm": "true",
                    "payment_method": "pm_card_visa",
                    "metadata[order_id]": order_id,
                },
            )
            answer.raise_for_status()
            body = _compact(
                build_event(
                    "payment_intent.succeeded",
                    answer.json(),
                    event_id=f"evt_{uuid.uuid4().hex[:24]}",
                )
            )
            headers = {
                "Content-Type": "application/json",
                "Stripe-Signature": sign_payload(body, STRIPE_SECRET),
            }
            times = 2 if self.rng.random() < 0.02 else 1
            deliveries += [("stripe", body, headers)] * times
        cancelled = _sample("orders/cancelled")
        for external in self.cancelled:
            deliveries += self._shopify("orders/cancelled", {**cancelled, "id": external})
        self.rng.shuffle(deliveries)
        return deliveries

    def wave_after(self) -> list[tuple[str, bytes, dict[str, str]]]:
        deliveries = []
        refund = _sample("refunds/create")
        for i, external in enumerate(self.refunded):
            deliveries += self._shopify(
                "refunds/create", {**refund, "order_id": external, "id": refund["id"] + 1000 + i}
            )
        for external in self.updated_customers:
            deliveries += self._shopify(
                "customers/update", self._customer("customers/update", external)
            )
        self.rng.shuffle(deliveries)
        return deliveries


def _post_all(
    http: httpx.Client, deliveries: list[tuple[str, bytes, dict[str, str]]]
) -> Counter[str]:
    answers: Counter[str] = Counter()
    lock = threading.Lock()

    def post(item: tuple[str, bytes, dict[str, str]]) -> None:
        source, body, headers = item
        try:
            response = http.post(f"/webhooks/{source}", content=body, headers=headers)
            try:
                outcome = str(
                    response.json().get("status") or response.json().get("error", {}).get("type")
                )
            except (ValueError, AttributeError):
                outcome = "?"
            key = f"{response.status_code} {outcome}"
        except httpx.HTTPError as exc:
            key = f"error {type(exc).__name__}"
        with lock:
            answers[key] += 1

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(post, deliveries))
    return answers


def _drive(
    mix: Mix, http: httpx.Client, emu: Any, tally: Tally, *, count: bool
) -> tuple[Counter[str], list[dict[str, Any]], int, float]:
    """The mix's three waves, each drained before the next; counted when `count`."""
    waves: list[tuple[str, Callable[[], list[tuple[str, bytes, dict[str, str]]]]]] = [
        ("placed", lambda: mix.wave_placed(http)),
        ("paid / cancelled", lambda: mix.wave_paid(http)),
        ("refunds, customer updates", mix.wave_after),
    ]
    answers: Counter[str] = Counter()
    phases = []
    elapsed = 0.0
    webhooks = 0
    for name, build in waves:
        deliveries = build()  # built (intents paid at the fake) before the clock
        webhooks += len(deliveries)
        tally.enabled = count
        started = time.monotonic()
        answers += _post_all(http, deliveries)
        emu.wait_idle(timeout=120)
        seconds = time.monotonic() - started
        tally.enabled = False
        elapsed += seconds
        phases.append({"wave": name, "webhooks": len(deliveries), "seconds": seconds})
    return answers, phases, webhooks, elapsed


def _log_offsets(log_dir: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_size for p in log_dir.glob("*.log")}


def _read_logs(log_dir: Path, since: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Per function: bytes logged, invocations and their durations (REPORT lines)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(log_dir.glob("*.log")):
        with path.open("rb") as handle:
            handle.seek(since.get(path.stem, 0))
            data = handle.read()
        lines = [
            ln
            for ln in data.splitlines(keepends=True)
            if not ln.startswith((b"[emulator]", b"[protocol]"))
        ]
        durations = [float(m.group(1)) for m in REPORT.finditer(data)]
        out[path.stem] = {
            "log_bytes": sum(len(ln) for ln in lines),
            "invocations": len(durations),
            "durations_ms": durations,
        }
    return out


def _seed(emu: Any, orders: int) -> dict[str, Any]:
    from storewire.adapters.dynamodb_inventory import DynamoDBStockStore

    ddb = emu.client("dynamodb")
    store = DynamoDBStockStore(ddb, emu.resources["InventoryTable"])
    for sku in SKUS:
        store.set_on_hand(sku, "default", 10 * orders + 100, ref="bench-shelf")
    seeded: dict[str, Any] = {"stock": list(SKUS), "channel_listings": 0}
    if "ChannelListingsTable" not in emu.resources:
        seeded["channel_listings_note"] = "ChannelListingsTable not in template.yaml"
        return seeded
    try:
        from storewire.adapters.dynamodb_channels import DynamoDBChannelListingStore
        from storewire.domain.channels import ChannelListing

        admin = emu.info()["fakes"].get("shopify_admin")
        listings = DynamoDBChannelListingStore(ddb, emu.resources["ChannelListingsTable"])
        for n, sku in enumerate(SKUS, start=1):
            item, location = f"gid://shopify/InventoryItem/{9000 + n}", "gid://shopify/Location/1"
            listings.put_mapping(
                ChannelListing(
                    sku=sku, location="default", inventory_item_id=item, location_id=location
                )
            )
            if admin:
                httpx.post(
                    f"{admin}/_fake/inventory",
                    json={
                        "inventory_item_id": item,
                        "location_id": location,
                        "available": 0,
                        "sku": sku,
                    },
                ).raise_for_status()
            seeded["channel_listings"] += 1
    except Exception as exc:  # #4 is being wired: report, do not fail the run
        seeded["channel_listings_note"] = f"{type(exc).__name__}: {exc}"
    return seeded


def _dlq_depths(emu: Any) -> dict[str, int]:
    depths = {}
    for logical_id in emu.resources:
        if logical_id.endswith("DeadLetterQueue"):
            try:
                depths[logical_id] = len(emu.peek_queue(logical_id))
            except Exception:
                depths[logical_id] = -1
    return depths


def latency(
    api_url: str, threads: int, max_requests: int, max_seconds: float, seed: int
) -> dict[str, Any]:
    """Closed-loop load of signed `orders/create` on the HTTP endpoint; p50/p99 of the answers."""
    from storewire_local.signing import shopify_headers

    created = _sample("orders/create")
    deadline = time.monotonic() + max_seconds
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    counter = iter(range(max_requests))

    def worker(index: int) -> None:
        with httpx.Client(base_url=api_url, timeout=30.0) as http:
            while time.monotonic() < deadline:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                raw = {**created, "id": 7_900_000_000_000 + seed * 100_000 + n}
                body = _compact(raw)
                headers = shopify_headers(
                    "orders/create",
                    body,
                    secret=SHOPIFY_SECRET,
                    shop=SHOP,
                    webhook_id=str(uuid.uuid4()),
                )
                started = time.perf_counter()
                response = http.post("/webhooks/shopify", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] += 1

    started = time.perf_counter()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=max_seconds + 60)
    wall = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return math.nan
        return latencies[min(len(latencies) - 1, math.ceil(p / 100 * len(latencies)) - 1)] * 1000

    return {
        "threads": threads,
        "requests": len(latencies),
        "seconds": wall,
        "requests_per_second": len(latencies) / wall if wall else 0.0,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else math.nan,
        "statuses": {str(k): v for k, v in statuses.items()},
    }


def run(
    orders: int = 60, seed: int = 7, load_requests: int = 300, load_seconds: float = 20.0
) -> dict[str, Any]:
    from storewire_local.emulator import Emulator

    tally = Tally()
    undo = install(tally)
    site = str(Path(__file__).resolve().parent / "worker_site")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = site
    env["SHOPIFY_WEBHOOK_SECRET"] = SHOPIFY_SECRET
    for key in ("STRIPE_WEBHOOK_SECRET", "STRIPE_API_KEY", "SHOPIFY_ADMIN_TOKEN"):
        env.pop(key, None)  # the development defaults, which the fakes accept
    result: dict[str, Any] = {"orders": orders, "seed": seed}
    try:
        with (
            tempfile.TemporaryDirectory(prefix="storewire-bench-") as state_dir,
            Emulator(
                ROOT / "template.yaml",
                port=0,
                state_dir=Path(state_dir),
                env=env,
                fire_schedules=False,
            ) as emu,
        ):
            tally.names = {spec.name[-50:]: lid for lid, spec in emu.functions.items()}
            result["functions"] = {
                lid: {"memory_mb": spec.memory_size, "events": [e.type for e in spec.events]}
                for lid, spec in emu.functions.items()
            }
            started = time.monotonic()
            emu.warm()
            result["warm_seconds"] = time.monotonic() - started
            result["seeded"] = _seed(emu, orders)
            fakes = emu.info()["fakes"]
            log_dir = Path(state_dir) / "logs"
            with httpx.Client(base_url=emu.api_url, timeout=60.0) as http:
                # warm-up: a few orders down every path, so each worker has wired its adapters
                # (boto3 import, secrets) before counting: steady state, as at scale
                warm = Mix(WARMUP_ORDERS, seed + 1000, fakes["stripe"], fakes["shopify_admin"])
                _drive(warm, http, emu, tally, count=False)
                result["warmup_orders"] = WARMUP_ORDERS
                mix = Mix(orders, seed, fakes["stripe"], fakes["shopify_admin"])
                time.sleep(0.3)  # the log pumps are asynchronous
                events_before = len(emu.recorded_events())
                offsets = _log_offsets(log_dir)
                answers, phases, webhooks, elapsed = _drive(mix, http, emu, tally, count=True)
                time.sleep(0.3)  # the log pumps are asynchronous
                result["counts"] = tally.snapshot()
                result["logs"] = _read_logs(log_dir, offsets)
                events = emu.recorded_events()[events_before:]
                result["events"] = dict(Counter(e["detail-type"] for e in events))
                result["answers"] = dict(answers)
                result["webhooks"] = webhooks
                result["phases"] = phases
                result["seconds"] = elapsed
                result["orders_per_second"] = orders / elapsed if elapsed else 0.0
                result["dead_letters"] = _dlq_depths(emu)
            result["latency"] = latency(emu.api_url, CONCURRENCY, load_requests, load_seconds, seed)
    finally:
        undo()
    result["cost"] = cost(result)
    return result


def cost(result: dict[str, Any]) -> dict[str, Any]:
    """Requests per order per service and US$ per million orders at `bench.prices`."""
    orders = result["orders"]
    counts = result["counts"]
    units = counts["units"]
    per_service: Counter[str] = Counter()
    for row in counts["requests"]:
        per_service[row["service"]] += row["count"]
    memory = {lid: f["memory_mb"] for lid, f in result["functions"].items()}
    invocations = 0
    gb_seconds = 0.0
    log_bytes = 0
    lambda_rows = {}
    for function, data in result["logs"].items():
        billed_ms = sum(math.ceil(d) for d in data["durations_ms"])
        gbs = billed_ms / 1000 * memory.get(function, 128) / 1024
        invocations += data["invocations"]
        gb_seconds += gbs
        log_bytes += data["log_bytes"]
        lambda_rows[function] = {
            "invocations_per_order": data["invocations"] / orders,
            "mean_ms": (sum(data["durations_ms"]) / len(data["durations_ms"]))
            if data["durations_ms"]
            else 0.0,
            "gb_s_per_order": gbs / orders,
            "log_bytes_per_order": data["log_bytes"] / orders,
            "usd_per_million": 1e6
            / orders
            * (
                data["invocations"] * prices.LAMBDA_REQUEST_PER_MILLION / 1e6
                + gbs * prices.LAMBDA_ARM64_PER_GB_SECOND
                + data["log_bytes"] / prices.GB * prices.CLOUDWATCH_LOGS_PER_GB
            ),
        }
    # Sensitivity: the same invocations at each function's 10th-percentile duration here, a
    # stand-in for an unloaded host (this machine is shared and moto sits behind one lock).
    gb_seconds_p10 = 0.0
    for function, data in result["logs"].items():
        ordered = sorted(data["durations_ms"])
        if ordered:
            p10 = math.ceil(ordered[len(ordered) // 10])
            gb_seconds_p10 += p10 * len(ordered) / 1000 * memory.get(function, 128) / 1024
    webhooks = result["webhooks"]
    m = 1e6 / orders  # per million orders
    lines = {
        "HTTP API requests": (webhooks / orders, webhooks * m * prices.HTTP_API_PER_MILLION / 1e6),
        "Lambda requests": (
            invocations / orders,
            invocations * m * prices.LAMBDA_REQUEST_PER_MILLION / 1e6,
        ),
        "Lambda GB-s (arm64)": (
            gb_seconds / orders,
            gb_seconds * m * prices.LAMBDA_ARM64_PER_GB_SECOND,
        ),
        "EventBridge events": (
            units.get("eventbridge_events", 0) / orders,
            units.get("eventbridge_events", 0) * m * prices.EVENTBRIDGE_EVENTS_PER_MILLION / 1e6,
        ),
        "SQS requests (64 KB units)": (
            units.get("sqs_requests", 0) / orders,
            units.get("sqs_requests", 0) * m * prices.SQS_REQUESTS_PER_MILLION / 1e6,
        ),
        "DynamoDB write units": (
            units.get("dynamodb_wru", 0) / orders,
            units.get("dynamodb_wru", 0) * m * prices.DYNAMODB_WRU_PER_MILLION / 1e6,
        ),
        "DynamoDB read units": (
            units.get("dynamodb_rru", 0) / orders,
            units.get("dynamodb_rru", 0) * m * prices.DYNAMODB_RRU_PER_MILLION / 1e6,
        ),
        "CloudWatch Logs bytes": (
            log_bytes / orders,
            log_bytes * m / prices.GB * prices.CLOUDWATCH_LOGS_PER_GB,
        ),
        "Secrets Manager calls": (
            units.get("secrets_calls", 0) / orders,
            units.get("secrets_calls", 0) * m * prices.SECRETS_MANAGER_PER_10K_CALLS / 1e4,
        ),
        "S3 requests (claim checks)": (
            (units.get("s3_put", 0) + units.get("s3_get", 0)) / orders,
            m
            * (
                units.get("s3_put", 0) * prices.S3_PUT_PER_THOUSAND
                + units.get("s3_get", 0) * prices.S3_GET_PER_THOUSAND
            )
            / 1e3,
        ),
    }
    total = sum(usd for _, usd in lines.values())
    gb_s_usd = lines["Lambda GB-s (arm64)"][1]
    at_p10 = total - gb_s_usd + gb_seconds_p10 * m * prices.LAMBDA_ARM64_PER_GB_SECOND
    by_origin: dict[str, Counter[str]] = {}
    for row in counts["requests"]:
        by_origin.setdefault(row["origin"], Counter())[f"{row['service']}.{row['operation']}"] += (
            row["count"]
        )
    return {
        "requests_per_order_by_service": {s: n / orders for s, n in sorted(per_service.items())},
        "requests_per_order_by_operation": {
            origin: {op: n / orders for op, n in sorted(ops.items())}
            for origin, ops in sorted(by_origin.items())
        },
        "lines": {
            name: {"per_order": q, "usd_per_million_orders": usd}
            for name, (q, usd) in lines.items()
        },
        "lambda": lambda_rows,
        "usd_per_million_orders": total,
        "usd_per_million_orders_lambda_at_p10_duration": at_p10,
        "budget_usd_per_million_orders": 10.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--load-requests", type=int, default=300)
    parser.add_argument("--load-seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    result = run(args.orders, args.seed, args.load_requests, args.load_seconds)
    text = json.dumps(result, indent=2, default=str)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
