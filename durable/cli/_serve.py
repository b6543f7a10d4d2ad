"""``durable serve``: a worker and the HTTP server on one runtime, in this process.

The address is bound before the runtime opens, so a port in use ends the command
(exit 3) before any run is claimed; a missing ``server`` extra is named as such.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import durable
from durable.cli._exits import CANNOT_LISTEN, Exit, import_modules, missing_extra
from durable.errors import DurableError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def serve(args: argparse.Namespace) -> None:
    if args.host not in LOOPBACK and not args.token:
        raise DurableError(
            f"refusing to serve on {args.host} without a token: anyone who can reach it could"
            " start, answer and cancel runs; pass --token (or set DURABLE_TOKEN), or bind"
            " 127.0.0.1"
        )
    server_class, create_app, config_class = _server_parts()
    import_modules(args.modules)
    listener = listen(args.host, args.port)
    port = listener.getsockname()[1]
    with listener:
        async with durable.Runtime(args.db) as rt:
            app = create_app(
                rt,
                token=args.token,
                host=args.host,
                allowed_host=args.allowed_host,
                max_body=args.max_body,
            )
            config = config_class(app, log_level="warning", lifespan="off")
            server = server_class(config, f"durable serve: http://{args.host}:{port} on {args.db}")
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, server.stop)
            await server.serve(sockets=[listener])
    print("durable serve: stopped cleanly", flush=True)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on the address, or ``Exit`` with code 3 saying why not."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        raise Exit(
            f"cannot listen on {host}:{port}: {reason}; stop what uses it, or pass"
            " --port with another port",
            CANNOT_LISTEN,
        ) from None


def _server_parts() -> tuple[type[Any], Any, type[Any]]:
    """uvicorn's server (with the runtime's signal handling), the app factory and
    uvicorn's config; ``Exit`` naming the ``server`` extra when it is missing."""
    try:
        import uvicorn

        from durable.server import create_app
    except ImportError as error:
        raise (missing_extra(error) or error) from None
    return _uvicorn_server(uvicorn.Server), create_app, uvicorn.Config


def _uvicorn_server(base: type[Any]) -> type[Any]:
    class Server(base):  # type: ignore[misc]
        """uvicorn's server, with the runtime's signal handling: a SIGTERM stops the HTTP
        server and then the runtime, cleanly (uvicorn would raise the signal again once
        it stopped, killing the process before the runtime let its runs go). It prints
        ``ready`` once it listens, so whoever waits for that line can connect."""

        def __init__(self, config: Any, ready: str) -> None:
            super().__init__(config)
            self.ready = ready

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def startup(self, sockets: Sequence[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started:
                print(self.ready, flush=True)

        def stop(self) -> None:
            self.should_exit = True

    return Server
