"""socket.io clients for tests: each records everything it hears."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import socketio  # type: ignore[import-untyped]
from aiohttp.test_utils import TestClient

from smeline import keys
from smeline.bus import EventBus
from smeline.realtime.events import SocketError
from smeline.realtime.server import Realtime
from smeline.realtime.setup import REALTIME
from smeline.webchat.services import ChatService
from smeline.webchat.setup import CHAT_SERVICE
from tests.conftest import Actor, Api

# How long a call may wait for its acknowledgement or a connection for its
# namespace: a deadline, not a wait (the answer normally comes in milliseconds;
# a CI machine busy with the rest of the suite once needed more than 5 s).
ACK_DEADLINE = 15.0


@dataclass
class Sock:
    """One socket.io client on one namespace, recording everything it hears."""

    client: Any
    namespace: str
    events: list[tuple[str, Any]] = field(default_factory=list)
    refusals: list[Any] = field(default_factory=list)
    disconnected: bool = False

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    def bus_names(self) -> list[str]:
        """The names of what came from the bus (the wallboard's snapshot pushes left out)."""
        return [name for name, _ in self.events if name != "wallboard.update"]

    def errors(self) -> list[dict[str, Any]]:
        return [data for name, data in self.events if name == "error"]

    def received(self, name: str) -> list[Any]:
        return [data for n, data in self.events if n == name]

    async def call(self, event: str, *args: Any) -> Any:
        return await self.client.call(
            event, _packed(args), namespace=self.namespace, timeout=ACK_DEADLINE
        )

    async def emit(self, event: str, *args: Any) -> None:
        await self.client.emit(event, _packed(args), namespace=self.namespace)

    @property
    def sid(self) -> str:
        sid = self.client.get_sid(self.namespace)
        assert isinstance(sid, str)
        return sid


def _packed(args: tuple[Any, ...]) -> Any:
    """python-socketio's client sends a tuple as several arguments, None as none."""
    if not args:
        return None
    return args[0] if len(args) == 1 else args


class Sockets:
    def __init__(self) -> None:
        self.open: list[Sock] = []

    def _make(self, namespace: str) -> Sock:
        client = socketio.AsyncClient(reconnection=False)
        sock = Sock(client=client, namespace=namespace)

        async def on_any(event: str, *args: Any) -> None:
            sock.events.append((event, args[0] if args else None))

        async def on_refused(data: Any = None) -> None:
            sock.refusals.append(data)

        async def on_disconnect(*_: Any) -> None:
            sock.disconnected = True

        client.on("*", on_any, namespace=namespace)
        client.on("connect_error", on_refused, namespace=namespace)
        client.on("disconnect", on_disconnect, namespace=namespace)
        self.open.append(sock)
        return sock

    async def connect(
        self,
        url: str,
        namespace: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        transports: tuple[str, ...] = ("websocket",),
    ) -> Sock:
        sock = self._make(namespace)
        await sock.client.connect(
            url,
            namespaces=[namespace],
            auth=auth,
            headers=headers or {},
            transports=list(transports),
            wait_timeout=ACK_DEADLINE,
        )
        return sock

    async def staff(self, url: str, namespace: str, actor: Actor) -> Sock:
        return await self.connect(url, namespace, auth={"token": actor.token})

    async def refusal(
        self,
        url: str,
        namespace: str,
        *,
        auth: Any = None,
        headers: dict[str, str] | None = None,
        transports: tuple[str, ...] = ("websocket",),
    ) -> dict[str, Any]:
        """The ``connect_error`` data of a connection that must be refused."""
        sock = self._make(namespace)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await sock.client.connect(
                url,
                namespaces=[namespace],
                auth=auth,
                headers=headers or {},
                transports=list(transports),
                wait_timeout=ACK_DEADLINE,
            )
        assert len(sock.refusals) == 1, sock.refusals
        refusal = sock.refusals[0]
        assert isinstance(refusal, dict)
        # The reason code is the message; the data is a SocketError.
        SocketError.model_validate(refusal["data"])
        assert refusal["message"] == refusal["data"]["code"]
        return refusal

    async def close(self) -> None:
        for sock in self.open:
            if sock.client.connected:
                await sock.client.disconnect()
            if sock.client.eio.http is not None and not sock.client.eio.http.closed:
                await sock.client.eio.http.close()


@dataclass
class Service:
    """A running app (aiohttp's test server) and its API helper."""

    client: TestClient[Any, Any]
    api: Api

    @property
    def url(self) -> str:
        return str(self.client.server.make_url("/"))

    @property
    def realtime(self) -> Realtime:
        return self.client.server.app[REALTIME]

    @property
    def bus(self) -> EventBus:
        return self.client.server.app[keys.BUS]

    @property
    def chat(self) -> ChatService:
        return self.client.server.app[CHAT_SERVICE]
