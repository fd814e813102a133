"""A real local HTTP server that receives webhooks: it records each POST and answers with the
queued replies in turn, then with ``reply``."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and hung up is expected in these tests


class Receiver:
    """``numbered``: a 2xx reply without a body carries ``{"id": "r-N"}``, the provider's id
    for the Nth request, as a real receiver might."""

    def __init__(self, *, numbered: bool = False) -> None:
        self.requests: list[Recorded] = []
        self.queued: list[Reply] = []
        self.reply = Reply()
        self.stopping = threading.Event()
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with lock:
                    receiver.requests.append(
                        Recorded("POST", self.path, dict(self.headers.items()), body)
                    )
                    number = len(receiver.requests)
                    reply = receiver.queued.pop(0) if receiver.queued else receiver.reply
                if reply.delay and receiver.stopping.wait(reply.delay):
                    return
                payload = reply.body
                if not payload and numbered and reply.status < 300:
                    payload = orjson.dumps({"id": f"r-{number}"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook?source=tidings"
        # A short poll so shutdown at the end of each test is quick.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
