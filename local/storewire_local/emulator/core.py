"""The emulator: moto + resources + HTTP API + SQS pollers + schedules + warm workers."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .cfn import ACCOUNT_ID, REGION, TemplateError
from .chaos import Chaos
from .http_api import HttpApiServer, routes_for
from .moto_server import MotoServer, RequestInfo
from .resources import ResourceCreator
from .runner import FunctionRunner, InvocationError, worker_environment
from .schedules import ScheduleError, next_fire
from .sqs import MotoSqsDirect, SqsPoller, SqsSource
from .stack import FunctionSpec, Stack

log = logging.getLogger("storewire.emulator")

# Template parameters the emulator points at its third-party fakes (parameter -> fake name).
FAKE_PARAMETERS: dict[str, str] = {
    "StripeApiBaseUrl": "stripe",
    "ShopifyAdminBaseUrl": "shopify_admin",
    "EasyPostApiBaseUrl": "easypost",
    "HubSpotApiBaseUrl": "hubspot",
}

# moto's backends are process-global: one emulator per process at a time.
_live_lock = threading.Lock()
_live: set[int] = set()


@dataclass
class ScheduleSource:
    function: str
    event_name: str
    expression: str
    enabled: bool
    input: Any | None
    rule_name: str

    def envelope(self, when: dt.datetime) -> Any:
        if self.input is not None:
            return json.loads(self.input) if isinstance(self.input, str) else self.input
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{self.rule_name}"],
            "detail": {},
        }


class Emulator:
    """``sam local`` for the whole graph, without Docker.

    >>> with Emulator(Path("template.yaml"), port=0) as emu:
    ...     httpx.post(f"{emu.api_url}/webhooks/shopify", ...)
    ...     emu.wait_idle()
    ...     emu.recorded_events()
    """

    def __init__(
        self,
        template_path: Path | str = Path("template.yaml"),
        port: int = 0,
        state_dir: Path | str = Path(".storewire"),
        env: Mapping[str, str] | None = None,
        *,
        parameter_overrides: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        moto_port: int = 0,
        max_workers: int = 2,
        fire_schedules: bool = True,
        serve_api: bool = True,
        pollers: bool = True,
        echo_logs: bool = False,
        log_echo: Callable[[str, str], None] | None = None,
        fakes: bool = True,
        fakes_process: bool = False,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        if not self.template_path.is_file():
            raise TemplateError(f"template not found: {self.template_path}")
        self.state_dir = Path(state_dir).resolve()
        self.env: dict[str, str] = dict(os.environ if env is None else env)
        self.parameter_overrides = dict(parameter_overrides or {})
        self.host = host
        self.port = port
        self.moto_port = moto_port
        self.max_workers = max_workers
        self.fire_schedules = fire_schedules
        self.serve_api = serve_api
        self.enable_pollers = pollers
        self.enable_fakes = fakes
        # fakes in a child process: their HTTP work leaves this process's GIL to moto
        self.fakes_process = fakes_process
        self._fakes_child: subprocess.Popen[bytes] | None = None
        self.fake_urls: dict[str, str] = {}
        self._echo = log_echo or (_stderr_echo if echo_logs else None)
        self.moto: MotoServer | None = None
        self.stack: Stack | None = None
        self.http: HttpApiServer | None = None
        self.functions: dict[str, FunctionSpec] = {}
        self.runners: dict[str, FunctionRunner] = {}
        self.pollers: list[SqsPoller] = []
        self.chaos = Chaos()
        self.schedules: list[ScheduleSource] = []
        self.resources: dict[str, str] = {}
        self.started_seconds: float | None = None
        self._runner_lock = threading.Lock()
        self._activity = threading.Condition()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    # -- lifecycle

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Emulator:
        started = time.monotonic()
        with _live_lock:
            if _live:
                raise RuntimeError(
                    "another Emulator is running in this process; moto's state is per process"
                )
            _live.add(id(self))
        self._stop.clear()
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()  # a fresh account for every emulator
        self.moto = MotoServer(
            self.host, self.moto_port, control=self._control, on_write=self._on_write
        )
        self.moto.start()
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        try:
            self.stack = Stack(self.template_path, self._with_fakes(), self.moto.url)
            creator = ResourceCreator(self.stack, self.session(), self.env)
            self.resources = creator.create_all()
            self.functions = self.stack.functions()
            self._wire_sources()
            if self.serve_api:
                self.http = HttpApiServer(
                    routes_for(self.functions.values()),
                    self.invoke,
                    self.host,
                    self.port,
                    track=self._track,
                )
                self.http.start()
            for poller in self.pollers:
                poller.start()
            if self.fire_schedules and self.schedules:
                self._scheduler = threading.Thread(
                    target=self._run_schedules, name="schedules", daemon=True
                )
                self._scheduler.start()
        except BaseException:
            self.stop()
            raise
        self.started_seconds = time.monotonic() - started
        log.info(
            "emulator ready in %.2fs: api %s, aws %s",
            self.started_seconds,
            self.api_url,
            self.aws_endpoint_url,
        )
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._activity:
            self._activity.notify_all()
        if self.http is not None:
            self.http.stop()
            self.http = None
        for poller in self.pollers:
            poller.signal_stop()
        for runner in list(self.runners.values()):
            runner.close()  # in-flight invocations fail now instead of running to their timeout
        for poller in self.pollers:
            poller.stop()
        self.pollers = []
        self.schedules = []
        if self._scheduler is not None:
            self._scheduler.join(timeout=5)
            self._scheduler = None
        self.runners = {}
        self._clients = {}
        if self.moto is not None:
            self.moto.stop()
            self.moto = None
        if self._fakes_child is not None:
            self._stop_fakes_child()
        elif self.fake_urls:
            from storewire_local.fakes import stop_fakes

            stop_fakes()
        self.fake_urls = {}
        with _live_lock:
            _live.discard(id(self))

    def _start_fakes_child(self, names: list[str]) -> dict[str, str]:
        env = {k: v for k, v in self.env.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        child = subprocess.Popen(
            [sys.executable, "-m", "storewire_local.fakes.serve", "--host", self.host, *names],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._fakes_child = child
        assert child.stdout is not None
        line = child.stdout.readline()
        if not line:
            self._stop_fakes_child()
            raise RuntimeError(f"the fakes process exited (code {child.poll()})")
        urls: dict[str, str] = json.loads(line)
        return urls

    def _stop_fakes_child(self) -> None:
        child, self._fakes_child = self._fakes_child, None
        if child is None:
            return
        with contextlib.suppress(OSError):
            if child.stdin is not None:
                child.stdin.close()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)

    def _with_fakes(self) -> dict[str, str]:
        """The parameter overrides, plus the third-party fakes' URLs for the parameters the
        template declares (``FAKE_PARAMETERS``) and the caller did not set. Starts the fakes."""
        overrides = dict(self.parameter_overrides)
        if not self.enable_fakes:
            return overrides
        from storewire_local.fakes import start_fakes

        from .cfn import load_template

        declared = load_template(self.template_path).get("Parameters") or {}
        wanted = {p: f for p, f in FAKE_PARAMETERS.items() if p in declared and p not in overrides}
        if not wanted:
            return overrides
        names = sorted(set(wanted.values()))
        if self.fakes_process:
            self.fake_urls = self._start_fakes_child(names)
        else:
            self.fake_urls = start_fakes(self.env, self.host, names=names)
        for parameter, fake in wanted.items():
            overrides[parameter] = self.fake_urls[fake]
        return overrides

    # -- wiring

    def _wire_sources(self) -> None:
        assert self.stack is not None
        queue_by_arn = {
            self.stack.arn(lid): lid
            for lid, res in self.stack.resources.items()
            if res.get("Type") == "AWS::SQS::Queue"
        }
        queue_by_url = {
            self.stack.queue_url(lid): lid
            for lid, res in self.stack.resources.items()
            if res.get("Type") == "AWS::SQS::Queue"
        }
        assert self.moto is not None
        sqs = MotoSqsDirect(self.moto.lock, ACCOUNT_ID)
        self._wire_schedule_rules()
        for spec in self.functions.values():
            for event in spec.events:
                props = event.properties
                if event.type == "SQS" and self.enable_pollers:
                    queue_arn = str(props.get("Queue"))
                    queue_id = queue_by_arn.get(queue_arn) or queue_by_url.get(queue_arn)
                    if queue_id is not None:
                        queue_arn = self.stack.arn(queue_id)
                    if queue_id is None:
                        log.warning(
                            "%s.%s: queue %s is not in the template",
                            spec.logical_id,
                            event.name,
                            queue_arn,
                        )
                        continue
                    enabled = props.get("Enabled", True) not in (False, "false", "False")
                    source = SqsSource(
                        function=spec.logical_id,
                        event_name=event.name,
                        queue_id=queue_id,
                        queue_url=self.stack.queue_url(queue_id),
                        queue_arn=queue_arn,
                        batch_size=int(props.get("BatchSize", 10)),
                        window_seconds=float(props.get("MaximumBatchingWindowInSeconds", 0)),
                        report_failures="ReportBatchItemFailures"
                        in (props.get("FunctionResponseTypes") or []),
                        enabled=enabled,
                    )
                    if enabled:
                        self.pollers.append(
                            SqsPoller(
                                source, sqs, self.invoke, self._activity, self._track, self.chaos
                            )
                        )
                elif event.type in ("Schedule", "ScheduleV2"):
                    state = str(props.get("State", "ENABLED")).upper()
                    enabled = props.get("Enabled", True) not in (False, "false") and state not in (
                        "DISABLED",
                    )
                    self.schedules.append(
                        ScheduleSource(
                            function=spec.logical_id,
                            event_name=event.name,
                            expression=str(
                                props.get("Schedule") or props.get("ScheduleExpression")
                            ),
                            enabled=enabled,
                            input=props.get("Input"),
                            rule_name=str(props.get("Name") or f"{spec.name}-{event.name}"),
                        )
                    )

    def _wire_schedule_rules(self) -> None:
        """``AWS::Events::Rule`` with a ScheduleExpression and function targets: fire them too."""
        assert self.stack is not None
        by_arn = {spec.arn: lid for lid, spec in self.functions.items()}
        for lid, res in self.stack.resources.items():
            if res.get("Type") != "AWS::Events::Rule":
                continue
            props = self.stack.properties(lid)
            expression = props.get("ScheduleExpression")
            if not expression:
                continue
            for target in props.get("Targets") or []:
                function = by_arn.get(str(target.get("Arn")))
                if function is None:
                    continue
                self.schedules.append(
                    ScheduleSource(
                        function=function,
                        event_name=lid,
                        expression=str(expression),
                        enabled=str(props.get("State", "ENABLED")).upper() == "ENABLED",
                        input=target.get("Input"),
                        rule_name=self.stack.physical_name(lid),
                    )
                )

    # -- properties

    @property
    def api_url(self) -> str:
        return self.http.url if self.http is not None else ""

    @property
    def aws_endpoint_url(self) -> str:
        if self.moto is None:
            raise RuntimeError("emulator not started")
        return self.moto.url

    @property
    def region(self) -> str:
        return REGION

    def session(self) -> Any:
        """A boto3 session whose clients must be created with ``endpoint_url=aws_endpoint_url``."""
        if self._session is None:
            import boto3

            self._session = boto3.session.Session(
                aws_access_key_id="testing",
                aws_secret_access_key="testing",  # noqa: S106 - moto
                region_name=REGION,
            )
        return self._session

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client bound to moto (cached when called without options)."""
        if kwargs:
            return self.session().client(service, endpoint_url=self.aws_endpoint_url, **kwargs)
        if service not in self._clients:
            from botocore.config import Config

            self._clients[service] = self.session().client(
                service,
                endpoint_url=self.aws_endpoint_url,
                config=Config(retries={"mode": "standard", "max_attempts": 3}),
            )
        return self._clients[service]

    def queue_url(self, logical_id: str) -> str:
        if self.stack is None:
            raise RuntimeError("emulator not started")
        return self.stack.queue_url(logical_id)

    def peek_queue(self, logical_id: str) -> list[dict[str, Any]]:
        """Every message in a queue (visible or not), read from moto without receiving it.

        Receive counts do not change, so peeking never pushes a message towards its DLQ.
        Each item: ``messageId``, ``body``, ``receiveCount``, ``visible``.
        """
        from moto.sqs.models import sqs_backends

        if self.stack is None or self.moto is None:
            raise RuntimeError("emulator not started")
        name = self.stack.physical_name(logical_id)
        with self.moto.lock:
            queue = sqs_backends[ACCOUNT_ID][REGION].queues[name]
            return [
                {
                    "messageId": message.id,
                    "body": message.body,
                    "receiveCount": message.approximate_receive_count,
                    "visible": message.visible,
                }
                for message in queue._messages
            ]

    def drain_queue(self, logical_id: str) -> list[dict[str, Any]]:
        """Receive and delete every visible message of a queue; the messages received."""
        sqs = self.client("sqs")
        url = self.queue_url(logical_id)
        drained: list[dict[str, Any]] = []
        while True:
            batch = (
                sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0, AttributeNames=["All"]
                ).get("Messages")
                or []
            )
            if not batch:
                return drained
            drained.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )

    def physical_resources(self) -> dict[str, str]:
        return dict(self.resources)

    def recorded_events(self) -> list[dict[str, Any]]:
        return self.moto.recorded_events() if self.moto is not None else []

    # -- invocation

    def runner(self, function_logical_id: str) -> FunctionRunner:
        with self._runner_lock:
            if self._stop.is_set():
                raise InvocationError(
                    function_logical_id,
                    {"errorType": "Emulator.Stopped", "errorMessage": "emulator stopped"},
                )
            if function_logical_id not in self.runners:
                if function_logical_id not in self.functions:
                    raise KeyError(f"no AWS::Serverless::Function {function_logical_id!r}")
                spec = self.functions[function_logical_id]
                max_workers = self.max_workers
                if spec.reserved_concurrency:
                    max_workers = min(max_workers, spec.reserved_concurrency)
                self.runners[function_logical_id] = FunctionRunner(
                    spec,
                    worker_environment(spec, self.aws_endpoint_url, self.env),
                    self.state_dir / "logs",
                    max_workers=max_workers,
                    echo=self._echo,
                    chaos=self.chaos,
                )
            return self.runners[function_logical_id]

    def invoke(self, function_logical_id: str, event: Any) -> Any:
        """Run a function once in its warm worker; its result, or InvocationError."""
        self._track(1)
        try:
            return self.runner(function_logical_id).invoke(event)
        finally:
            self._track(-1)

    def warm(self, *function_logical_ids: str) -> None:
        """Start the workers of these functions (all when none given) in parallel."""
        ids = function_logical_ids or tuple(self.functions)
        threads = [threading.Thread(target=self.runner(fid).warm) for fid in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def fire_schedule(self, function_logical_id: str, event_name: str | None = None) -> Any:
        """Fire a schedule now (synchronously); the handler's result."""
        for schedule in self.schedules:
            if schedule.function == function_logical_id and event_name in (
                None,
                schedule.event_name,
            ):
                return self.invoke(function_logical_id, schedule.envelope(dt.datetime.now(dt.UTC)))
        raise KeyError(f"no schedule {function_logical_id}/{event_name}")

    def _run_schedules(self) -> None:
        started = dt.datetime.now(dt.UTC)
        due: dict[int, dt.datetime | None] = {}
        for index, schedule in enumerate(self.schedules):
            if not schedule.enabled:
                continue
            try:
                due[index] = next_fire(schedule.expression, started, started)
            except ScheduleError as exc:
                log.warning(
                    "%s.%s: %s; fire it on demand", schedule.function, schedule.event_name, exc
                )
        while not self._stop.is_set():
            now = dt.datetime.now(dt.UTC)
            for index, when in list(due.items()):
                if when is not None and when <= now:
                    schedule = self.schedules[index]
                    threading.Thread(
                        target=self._fire_async, args=(schedule, when), daemon=True
                    ).start()
                    due[index] = next_fire(schedule.expression, now, started)
            upcoming = [w for w in due.values() if w is not None]
            wait = min(((min(upcoming) - now).total_seconds() if upcoming else 60.0), 1.0)
            self._stop.wait(max(0.05, wait))

    def _fire_async(self, schedule: ScheduleSource, when: dt.datetime) -> None:
        try:
            self.invoke(schedule.function, schedule.envelope(when))
        except InvocationError as exc:
            log.warning("scheduled %s.%s failed: %s", schedule.function, schedule.event_name, exc)

    # -- idleness

    def _track(self, delta: int) -> None:
        with self._busy_lock:
            self._busy += delta

    def _on_write(self, info: RequestInfo) -> None:
        with self._activity:
            self._activity.notify_all()

    def _queues_empty(self) -> bool:
        """No polled queue holds a message (visible, in flight or delayed).

        Read from moto's backend in this process, not through the SQS API: `wait_idle` asks
        this every 50 ms, and one GetQueueAttributes per queue per ask was as many requests
        as the graph's own traffic, competing with it for moto's lock.
        """
        from moto.sqs.models import sqs_backends

        if self.moto is None or self.stack is None:
            return True
        queues = sqs_backends[ACCOUNT_ID][REGION].queues
        with self.moto.lock:
            for poller in self.pollers:
                queue = queues.get(self.stack.physical_name(poller.source.queue_id))
                if queue is not None and queue._messages:
                    return False
        return True

    def is_idle(self) -> bool:
        with self._busy_lock:
            if self._busy:
                return False
        return self._queues_empty() and self._busy == 0

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every polled queue is empty and nothing is in flight (twice in a row)."""
        deadline = time.monotonic() + timeout
        streak = 0
        while time.monotonic() < deadline:
            if self.is_idle():
                streak += 1
                if streak >= 2:
                    return
                time.sleep(0.02)
                continue
            streak = 0
            time.sleep(0.05)
        raise TimeoutError(f"emulator not idle after {timeout}s")

    # -- control endpoints (under /_storewire/ on the AWS endpoint)

    def _control(
        self, method: str, path: str, body: bytes, query: dict[str, str]
    ) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p][1:]
        if parts[:1] == ["invoke"] and len(parts) == 2 and method == "POST":
            event = json.loads(body or b"{}")
            try:
                return 200, {"ok": True, "result": self.invoke(parts[1], event)}
            except InvocationError as exc:
                return 200, {"ok": False, "error": exc.error}
            except KeyError as exc:
                return 404, {"message": str(exc)}
        if parts[:1] == ["schedules"] and len(parts) in (2, 3) and method == "POST":
            try:
                result = self.fire_schedule(parts[1], parts[2] if len(parts) == 3 else None)
                return 200, {"ok": True, "result": result}
            except InvocationError as exc:
                return 200, {"ok": False, "error": exc.error}
            except KeyError as exc:
                return 404, {"message": str(exc)}
        if parts == ["idle"]:
            try:
                self.wait_idle(float(query.get("timeout", "30")))
                return 200, {"idle": True}
            except TimeoutError:
                return 200, {"idle": False}
        if parts == ["info"]:
            return 200, self.info()
        return 404, {"message": "Not Found"}

    def info(self) -> dict[str, Any]:
        return {
            "api_url": self.api_url,
            "aws_endpoint_url": self.aws_endpoint_url,
            "region": REGION,
            "account_id": ACCOUNT_ID,
            "template": str(self.template_path),
            "resources": self.physical_resources(),
            "functions": {lid: spec.name for lid, spec in self.functions.items()},
            "routes": [
                r.route_key + " -> " + r.function for r in (self.http.routes if self.http else [])
            ],
            "schedules": [f"{s.function}/{s.event_name}: {s.expression}" for s in self.schedules],
            "pid": os.getpid(),
            "fakes": dict(self.fake_urls),
        }


def _stderr_echo(function: str, line: str) -> None:
    sys.stderr.write(f"[{function}] {line}\n")
    sys.stderr.flush()
