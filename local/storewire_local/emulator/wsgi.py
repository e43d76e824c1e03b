"""The emulator's AWS endpoint (moto) on waitress.

Werkzeug's development server closes the connection after every response and then waits
10 ms for a request body the application might have left unread. Every AWS call a worker
made paid a new TCP connection, a new thread and that wait: ~10 ms of an ~11 ms moto round
trip. Waitress keeps connections alive, buffers the request body before the application
sees it, and serves from a fixed pool of threads.

The HTTP API stays on werkzeug: it joins repeated headers with "," as API Gateway does
(waitress joins them with ", "), and it carries a few requests per order, not a hundred.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

# Pollers, workers and the CLI all talk at once; long polls (WaitTimeSeconds) hold a thread.
DEFAULT_THREADS = 24


class LoopbackServer:
    """A WSGI application served on a loopback port from a daemon thread."""

    def __init__(
        self,
        app: WSGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "wsgi",
        threads: int = DEFAULT_THREADS,
    ) -> None:
        from waitress.server import create_server

        logging.getLogger("waitress").setLevel(logging.ERROR)
        self._server: Any = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="storewire-emulator",
            clear_untrusted_proxy_headers=False,
            channel_timeout=300,
            connection_limit=1000,
            asyncore_use_poll=True,
        )
        self._name = name
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # stop() closed the map under the loop
            self._server.run()

    def stop(self) -> None:
        server = self._server
        # threads first (a finishing task pulls the loop's trigger), then the sockets
        server.task_dispatcher.shutdown(timeout=5)
        for channel in list(server._map.values()):  # the listener, the trigger, connections
            channel.handle_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
