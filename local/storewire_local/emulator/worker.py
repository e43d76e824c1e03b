"""A warm Lambda worker: ``python -m storewire_local.emulator.worker``.

Protocol: one JSON object per line. Requests arrive on the original stdin, responses go to
the original stdout; before the handler is imported, fd 1 is pointed at stderr and fd 0 at
/dev/null, so handler prints and logs cannot corrupt the channel.

Request:  {"id": str, "event": any, "deadline_ms": int (epoch ms)}
Response: {"id": str, "ok": true, "result": any}
          {"id": str, "ok": false, "error": {"errorType", "errorMessage", "stackTrace"}}
The first line the worker writes is {"ready": true} (or {"ready": false, "error": {...}}).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

from .cfn import ACCOUNT_ID, REGION


class LambdaContext:
    """The parts of the Lambda context object handlers use."""

    def __init__(self, request_id: str, deadline_ms: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.invoked_function_arn = (
            f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"
        )
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc),
    }


def _write(channel: BinaryIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message, default=str).encode() + b"\n")
    channel.flush()


def _load_handler() -> Callable[[Any, Any], Any]:
    spec = os.environ["_HANDLER"]
    module_name, _, function_name = spec.rpartition(".")
    module = importlib.import_module(module_name.replace("/", "."))
    handler = getattr(module, function_name)
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler  # type: ignore[no-any-return]


def main() -> int:
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    extra = [p for p in os.environ.get("STOREWIRE_WORKER_PATH", "").split(os.pathsep) if p]
    sys.path[:0] = extra
    try:
        handler = _load_handler()
    except BaseException as exc:
        traceback.print_exc()
        _write(proto_out, {"ready": False, "error": _error(exc)})
        return 1
    _write(proto_out, {"ready": True})
    for line in proto_in:
        if not line.strip():
            continue
        request = json.loads(line)
        context = LambdaContext(str(request["id"]), int(request["deadline_ms"]))
        os.environ["_X_AMZN_TRACE_ID"] = (
            f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0"
        )
        print(f"START RequestId: {request['id']} Version: $LATEST", file=sys.stderr, flush=True)
        started = time.monotonic()
        try:
            result = handler(request["event"], context)
            try:
                json.dumps(result)
                response: dict[str, Any] = {"id": request["id"], "ok": True, "result": result}
            except (TypeError, ValueError) as exc:
                response = {"id": request["id"], "ok": False, "error": _error(exc)}
        except Exception as exc:
            traceback.print_exc()
            response = {"id": request["id"], "ok": False, "error": _error(exc)}
        duration = (time.monotonic() - started) * 1000
        sys.stderr.flush()
        print(
            f"END RequestId: {request['id']}\nREPORT RequestId: {request['id']}\t"
            f"Duration: {duration:.2f} ms",
            file=sys.stderr,
            flush=True,
        )
        _write(proto_out, response)
    return 0


if __name__ == "__main__":
    sys.exit(main())
