"""The shared outbound HTTP layer, on httpx.MockTransport: no sockets, no real sleeping."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from storewire.errors import PermanentError, RetryableError
from storewire.http import (
    Deadline,
    HttpClient,
    PermanentUpstreamError,
    RetryableUpstreamError,
    RetryAfter,
    RetryPolicy,
    parse_retry_after,
)


class Script:
    """A MockTransport handler answering from a list of responses or exceptions, in order."""

    def __init__(self, *answers: httpx.Response | Exception | int) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, int):
            return httpx.Response(answer, json={"ok": answer < 400})
        return answer


class Sleeps:
    def __init__(self, clock: list[float] | None = None) -> None:
        self.calls: list[float] = []
        self.clock = clock

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.clock is not None:
            self.clock[0] += seconds


def make(
    script: Script,
    *,
    sleeps: Sleeps | None = None,
    rand: Callable[[], float] = lambda: 1.0,
    policy: RetryPolicy | None = None,
    deadline: Deadline | None = None,
) -> HttpClient:
    client = httpx.Client(transport=httpx.MockTransport(script), base_url="https://api.test")
    return HttpClient(
        client,
        service="test",
        policy=policy or RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=4.0),
        sleep=sleeps or Sleeps(),
        rand=rand,
        deadline=deadline,
    )


def test_given_two_500s_then_a_200_when_requested_then_it_succeeds_on_the_third_attempt() -> None:
    script = Script(500, 500, 200)
    sleeps = Sleeps()

    response = make(script, sleeps=sleeps).request("GET", "https://api.test/v1/thing")

    assert response.status_code == 200
    assert len(script.requests) == 3
    assert sleeps.calls == [0.5, 1.0]  # rand() == 1.0: the top of each full-jitter window


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
def test_given_a_retryable_status_every_time_when_requested_then_retryable_after_max_attempts(
    status: int,
) -> None:
    script = Script(status)

    with pytest.raises(RetryableUpstreamError) as caught:
        make(script).request("GET", "https://api.test/x")

    assert len(script.requests) == 4
    assert caught.value.status == status
    assert caught.value.attempts == 4
    assert isinstance(caught.value, RetryableError)


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404, 422])
def test_given_a_permanent_4xx_when_requested_then_it_fails_at_once_as_permanent(
    status: int,
) -> None:
    script = Script(status)
    sleeps = Sleeps()

    with pytest.raises(PermanentUpstreamError) as caught:
        make(script, sleeps=sleeps).request("GET", "https://api.test/x")

    assert len(script.requests) == 1
    assert sleeps.calls == []
    assert caught.value.status == status
    assert isinstance(caught.value, PermanentError)


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
def test_given_a_transport_failure_then_a_200_when_a_get_is_sent_then_it_is_retried(
    error: Exception,
) -> None:
    script = Script(error, 200)

    response = make(script).request("GET", "https://api.test/x")

    assert response.status_code == 200
    assert len(script.requests) == 2


def test_given_a_timeout_every_time_when_requested_then_the_error_names_the_failure() -> None:
    script = Script(httpx.ReadTimeout("slow"))

    with pytest.raises(RetryableUpstreamError) as caught:
        make(script).request("GET", "https://api.test/x")

    assert caught.value.code == "ReadTimeout"
    assert caught.value.status is None


def test_given_an_idempotency_key_when_retried_then_every_attempt_carries_the_same_key() -> None:
    script = Script(httpx.ReadTimeout("slow"), 500, 200)

    make(script).request(
        "POST", "https://api.test/v1/payment_intents", data={"amount": "100"}, idempotency_key="k1"
    )

    assert [r.headers["Idempotency-Key"] for r in script.requests] == ["k1", "k1", "k1"]
    assert all(r.content == b"amount=100" for r in script.requests)


def test_given_a_post_without_a_key_when_the_read_times_out_then_it_is_not_resent() -> None:
    script = Script(httpx.ReadTimeout("slow"), 200)

    with pytest.raises(RetryableUpstreamError):
        make(script).request("POST", "https://api.test/v1/charges", data={"amount": "1"})

    assert len(script.requests) == 1


def test_given_a_post_without_a_key_when_the_connect_fails_then_it_is_resent() -> None:
    script = Script(httpx.ConnectError("refused"), 200)

    response = make(script).request("POST", "https://api.test/v1/charges", data={"amount": "1"})

    assert response.status_code == 200
    assert len(script.requests) == 2


def test_given_a_read_only_post_marked_idempotent_when_it_times_out_then_it_is_resent() -> None:
    script = Script(httpx.ReadTimeout("slow"), 200)

    make(script).request("POST", "https://api.test/graphql", json={"query": "{}"}, idempotent=True)

    assert len(script.requests) == 2


def test_given_429_with_retry_after_when_retried_then_the_server_delay_is_honoured() -> None:
    script = Script(httpx.Response(429, headers={"Retry-After": "3"}), 200)
    sleeps = Sleeps()

    make(script, sleeps=sleeps).request("GET", "https://api.test/x")

    assert sleeps.calls == [3.0]


def test_given_a_retry_after_beyond_the_cap_when_requested_then_it_fails_at_once() -> None:
    script = Script(httpx.Response(503, headers={"Retry-After": "120"}), 200)
    sleeps = Sleeps()

    with pytest.raises(RetryableUpstreamError) as caught:
        make(script, sleeps=sleeps).request("GET", "https://api.test/x")

    assert sleeps.calls == []
    assert caught.value.retry_after == 120.0
    assert len(script.requests) == 1


def test_given_a_deadline_shorter_than_the_retry_after_when_requested_then_no_sleep() -> None:
    clock = [100.0]
    deadline = Deadline(clock=lambda: clock[0])
    deadline.reset(2.0)
    script = Script(httpx.Response(429, headers={"Retry-After": "5"}), 200)
    sleeps = Sleeps(clock)

    with pytest.raises(RetryableUpstreamError):
        make(script, sleeps=sleeps, deadline=deadline).request("GET", "https://api.test/x")

    assert sleeps.calls == []


def test_given_a_spent_deadline_when_requested_then_nothing_is_sent() -> None:
    clock = [100.0]
    deadline = Deadline(clock=lambda: clock[0])
    deadline.reset(0)
    script = Script(200)

    with pytest.raises(RetryableUpstreamError, match="deadline"):
        make(script, deadline=deadline).request("GET", "https://api.test/x")

    assert script.requests == []


def test_given_a_deadline_when_requested_then_the_attempt_timeout_is_capped_by_it() -> None:
    clock = [100.0]
    deadline = Deadline(clock=lambda: clock[0])
    deadline.reset(1.5)
    script = Script(200)

    make(script, deadline=deadline).request("GET", "https://api.test/x")

    timeout = script.requests[0].extensions["timeout"]
    assert timeout["read"] == 1.5
    assert timeout["connect"] == 1.5


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.999])
def test_given_full_jitter_when_backing_off_then_each_delay_is_within_its_window(
    rand: float,
) -> None:
    policy = RetryPolicy(max_attempts=6, base_delay=0.5, max_delay=4.0)
    windows = [0.5, 1.0, 2.0, 4.0, 4.0]

    delays = [policy.backoff(retry, lambda: rand) for retry in range(5)]

    for delay, window in zip(delays, windows, strict=True):
        assert 0.0 <= delay <= window
        assert delay == pytest.approx(rand * window)


def test_given_an_inspector_asking_to_retry_a_200_when_requested_then_it_is_retried() -> None:
    script = Script(httpx.Response(200, json={"errors": ["THROTTLED"]}), 200)
    sleeps = Sleeps()
    answers = iter([RetryAfter(1.5, "THROTTLED"), None])

    make(script, sleeps=sleeps).request(
        "POST",
        "https://api.test/graphql",
        json={},
        idempotent=True,
        inspect=lambda r: next(answers),
    )

    assert len(script.requests) == 2
    assert sleeps.calls == [1.5]


def test_given_a_vendor_error_describer_when_refused_then_the_code_is_kept() -> None:
    script = Script(
        httpx.Response(404, json={"error": {"code": "resource_missing", "message": "No such"}})
    )
    client = HttpClient(
        httpx.Client(transport=httpx.MockTransport(script)),
        service="stripe",
        describe_error=lambda r: (r.json()["error"]["code"], r.json()["error"]["message"]),
        sleep=Sleeps(),
    )

    with pytest.raises(PermanentUpstreamError) as caught:
        client.request("GET", "https://api.test/v1/payment_intents/pi_x")

    assert caught.value.code == "resource_missing"
    assert "No such" in caught.value.message
    assert caught.value.service == "stripe"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-1", 0.0), ("soon", None), (None, None), ("", None)],
)
def test_given_retry_after_values_when_parsed_then_seconds_or_none(
    value: str | None, expected: float | None
) -> None:
    assert parse_retry_after(value) == expected


def test_given_an_http_date_retry_after_when_parsed_then_seconds_until_it() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 27, 3, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Fri, 27 Nov 2026 03:00:07 GMT", now=lambda: now) == 7.0


def refused(status: int) -> PermanentUpstreamError:
    return PermanentUpstreamError("refused", service="test", status=status)


def test_given_a_401_when_the_credential_changed_then_the_call_is_made_once_more() -> None:
    from storewire.http import with_fresh_credential

    used: list[str] = []

    def call(key: str) -> str:
        used.append(key)
        if key == "old":
            raise refused(401)
        return "ok"

    assert with_fresh_credential(call, lambda refresh=False: "new" if refresh else "old") == "ok"
    assert used == ["old", "new"]


@pytest.mark.parametrize(("status", "fresh"), [(401, "same"), (403, "new"), (404, "new")])
def test_given_no_new_credential_or_another_refusal_when_called_then_it_stays_permanent(
    status: int, fresh: str
) -> None:
    from storewire.http import with_fresh_credential

    used: list[str] = []

    def call(key: str) -> str:
        used.append(key)
        raise refused(status)

    with pytest.raises(PermanentUpstreamError):
        with_fresh_credential(call, lambda refresh=False: fresh if refresh else "same")

    assert used == ["same"]
