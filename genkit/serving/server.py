"""Running the app: uvicorn on one socket, until Ctrl-C or SIGTERM.

On either signal uvicorn stops accepting connections, lets the requests in flight finish (at
most `grace_s`), then the batcher stops; the process then exits 0. (uvicorn itself re-raises the
signal once it has shut down, which would end the process as killed: a stop asked for is not
a failure here.)
"""

import ipaddress
import logging
import socket

import uvicorn
from fastapi import FastAPI

from genkit.errors import GenkitError


class _Server(uvicorn.Server):
    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()  # shut down, then return: no re-raised signal


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """The listening socket (port 0: a free one), bound before the model loads so that a busy
    port is said at once."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # listening from here: a client that connects before uvicorn accepts waits in the backlog
        # (genkit says it is ready during the app's startup, before uvicorn's own listen())
        sock.listen(2048)
    except OSError as err:
        sock.close()
        raise GenkitError(
            f"genkit serve cannot listen on {host}:{port} ({err.strerror or err}); pass another port= (port=0 "
            f"picks a free one) or host=."
        ) from None
    return sock


def run(app: FastAPI, sock: socket.socket, grace_s: float) -> None:
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # genkit says when it is ready
    config = uvicorn.Config(
        app,
        log_config=None,  # genkit's logging as configured; no access log line per request
        access_log=False,
        timeout_graceful_shutdown=max(int(grace_s), 1),
        lifespan="on",
    )
    _Server(config).run(sockets=[sock])
