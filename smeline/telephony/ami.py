"""AMI client on asyncio streams: login, reconnect, actions, list actions, events.

We do not use panoramisk: its reader decodes every TCP chunk on its own and
loses a Chinese caller name split across two reads. Bytes go through
:class:`~smeline.telephony.ami_protocol.AmiParser`, which splits messages
before decoding.

What the recordings of a real Asterisk 22 (``tests/recordings/``) show and this
client therefore relies on:

- a reply is a message *without* ``Event:`` that carries our ``ActionID``;
  ``OriginateResponse`` is an event that also carries ``Response:`` and the
  ActionID of the Originate — it goes to the listeners, never taken as a reply;
- a list action answers ``EventList: start``, then item events carrying the
  ActionID, then ``…Complete`` with ``EventList: Complete`` and ``ListItems``;
  unrelated events can arrive in between;
- a bad login is answered after about one second with ``Response: Error`` and
  the connection is closed, so a retry loop without back-off would hammer it;
- ``Logoff`` is answered ``Response: Goodbye`` and the connection is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from smeline.masking import mask_phones_in_text
from smeline.telephony.ami_protocol import AmiMessage, AmiParser, AmiProtocolError, encode_message

logger = logging.getLogger(__name__)

#: Events dropped before the listeners. The shipped manager.conf also filters
#: them server-side; VarSet alone was 108 of ~230 events of a recorded call.
DEFAULT_IGNORED_EVENTS: frozenset[str] = frozenset(
    {"VarSet", "CEL", "RTCPSent", "RTCPReceived", "Newexten", "AGIExecStart", "AGIExecEnd"}
)

#: Longest value (UTF-8 bytes) accepted in an outgoing field. Asterisk's own
#: header buffer is far smaller than a megabyte; nothing we send legitimately
#: comes close to this, so a longer value is a bug or hostile input.
MAX_FIELD_BYTES = 4096

_READ_SIZE = 65536
_SUCCESS = frozenset({"success", "goodbye"})

EventListener = Callable[[AmiMessage], None]
ConnectListener = Callable[[], Awaitable[None]]
DisconnectListener = Callable[[], None]
Fields = Mapping[str, str] | Sequence[tuple[str, str]]


class AmiError(Exception):
    """Base class of the AMI client's errors."""


class AmiNotConnected(AmiError):
    """Not logged in, or the connection was lost while the action was pending."""


class AmiTimeout(AmiError):
    """No (complete) reply within the timeout."""


class AmiActionError(AmiError):
    """Asterisk answered ``Response: Error``."""

    def __init__(self, action: str, message: str, response: AmiMessage | None = None) -> None:
        super().__init__(f"{action}: {message}")
        self.action = action
        self.message = message
        self.response = response


class _LoginRejected(AmiError):
    pass


class _KeepAliveFailed(AmiError):
    pass


@dataclass(frozen=True, slots=True)
class AmiResult:
    """The reply to one action; for a list action also its items and ``…Complete``."""

    response: AmiMessage
    events: list[AmiMessage] = field(default_factory=list)
    complete: AmiMessage | None = None

    @property
    def ok(self) -> bool:
        return (self.response.get("Response") or "").lower() in _SUCCESS

    @property
    def message(self) -> str | None:
        return self.response.get("Message")


class _Pending:
    __slots__ = ("action", "collecting", "events", "future", "response")

    def __init__(self, action: str, future: asyncio.Future[AmiResult]) -> None:
        self.action = action
        self.future = future
        self.collecting = False
        self.response: AmiMessage | None = None
        self.events: list[AmiMessage] = []


def _settle(future: asyncio.Future[Any]) -> None:
    """Cancel a future nobody awaits any more, or mark its exception as seen."""
    if not future.done():
        future.cancel()
    elif not future.cancelled():
        future.exception()


def _is_list_complete(message: AmiMessage) -> bool:
    if (message.get("EventList") or "").lower() == "complete":
        return True
    return (message.event or "").endswith("Complete")


class AmiActions(Protocol):
    """What services need of an AMI client (tests pass stand-ins of their own)."""

    @property
    def connected(self) -> bool: ...

    async def send_action(
        self,
        action: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        check: bool = False,
    ) -> AmiResult: ...


class AmiClient:
    """One AMI connection kept alive in the background; see ``docs/ami.md``."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        secret: str,
        name: str = "asterisk",
        connect_timeout: float = 5.0,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        ignored_events: frozenset[str] = DEFAULT_IGNORED_EVENTS,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._secret = secret
        self.name = name
        self._connect_timeout = connect_timeout
        self._action_timeout = action_timeout
        self._ping_interval = ping_interval
        self._backoff_initial = backoff_initial
        self._backoff_max = max(backoff_max, backoff_initial)
        self._ignored = ignored_events

        self._event_listeners: list[EventListener] = []
        self._connect_listeners: list[ConnectListener] = []
        self._disconnect_listeners: list[DisconnectListener] = []

        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._originate_waiters: dict[str, asyncio.Future[AmiMessage]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._logged_in = False
        self._connected_event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener_tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._ever_logged_in = False
        self._last_connection_logged_in = False

        #: Every event read from the socket (ignored ones and list items included).
        self.events_received = 0
        #: Successful logins after the first one.
        self.reconnects = 0
        #: TCP connection attempts, successful or not.
        self.connect_attempts = 0
        #: Bytes read from the socket.
        self.bytes_received = 0

    # -- lifecycle -----------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Logged in and able to send actions."""
        return self._logged_in

    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"ami-{self.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self._logged_in:
            try:
                await self._request("Logoff", (), limit=min(self._action_timeout, 2.0))
            except (AmiError, OSError) as exc:
                logger.debug("AMI %s: Logoff not acknowledged: %s", self.name, exc)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        tasks = list(self._listener_tasks)
        for listener_task in tasks:
            listener_task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # The timeouts are part of the public signature on purpose: callers pass
    # one number rather than wrapping every call in asyncio.timeout().
    async def wait_connected(self, timeout: float) -> None:  # noqa: ASYNC109
        """Wait until logged in; :class:`AmiTimeout` if that takes longer than ``timeout``."""
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            raise AmiTimeout(f"AMI {self.name}: not connected within {timeout} s") from None

    # -- listeners -----------------------------------------------------------

    def add_event_listener(self, callback: EventListener) -> None:
        """Called synchronously, in arrival order, for every event not ignored."""
        self._event_listeners.append(callback)

    def add_connect_listener(self, callback: ConnectListener) -> None:
        """Run as a task after every successful login (rebuild the live picture)."""
        self._connect_listeners.append(callback)

    def add_disconnect_listener(self, callback: DisconnectListener) -> None:
        self._disconnect_listeners.append(callback)

    # -- actions -------------------------------------------------------------

    async def send_action(
        self,
        action: str,
        fields: Fields = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        check: bool = False,
    ) -> AmiResult:
        """Send one action and wait for its reply (and, for a list action, its items).

        ``check=True`` raises :class:`AmiActionError` on ``Response: Error``.
        """
        result = await self._request(action, fields, limit=timeout)
        if check:
            self._check(action, result)
        return result

    async def originate_and_wait(
        self,
        fields: Fields,
        *,
        timeout: float,  # noqa: ASYNC109
    ) -> AmiMessage:
        """Async Originate; returns the ``OriginateResponse`` event with our ActionID.

        ``Timeout`` in ``fields`` is in milliseconds (Asterisk's unit). The
        recorded outcomes: Reason 4 answered, 3 no answer, 0 busy or unknown
        endpoint (``Uniqueid: <unknown>`` unless a ``ChannelId`` was given).
        """
        pairs = [(k, v) for k, v in self._field_pairs(fields) if k.lower() != "async"]
        pairs.append(("Async", "true"))
        action_id = self._next_id()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter: asyncio.Future[AmiMessage] = loop.create_future()
        self._originate_waiters[action_id] = waiter
        try:
            result = await self._request(
                "Originate",
                pairs,
                limit=min(self._action_timeout, timeout),
                action_id=action_id,
            )
            self._check("Originate", result)
            remaining = max(deadline - loop.time(), 0.0)
            try:
                return await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                raise AmiTimeout(f"Originate: no OriginateResponse within {timeout} s") from None
        finally:
            self._originate_waiters.pop(action_id, None)
            _settle(waiter)

    # -- internals: requests -------------------------------------------------

    def _next_id(self) -> str:
        return f"{self.name}-{next(self._ids)}"

    @staticmethod
    def _field_pairs(fields: Fields) -> list[tuple[str, str]]:
        items: Iterable[tuple[str, str]]
        items = fields.items() if isinstance(fields, Mapping) else fields
        pairs: list[tuple[str, str]] = []
        for key, value in items:
            if not key or any(c in key for c in ":\r\n"):
                raise ValueError(f"invalid AMI field name {key!r}")
            if key.lower() in ("action", "actionid"):
                raise ValueError(f"{key} is set by the client")
            if len(value.encode("utf-8")) > MAX_FIELD_BYTES:
                raise ValueError(f"AMI field {key} longer than {MAX_FIELD_BYTES} bytes")
            pairs.append((key, value))
        return pairs

    def _check(self, action: str, result: AmiResult) -> None:
        if (result.response.get("Response") or "").lower() == "error":
            message = result.message or ""
            # The caller decides whether this matters; keep the log quiet.
            logger.debug("AMI %s: %s failed: %s", self.name, action, mask_phones_in_text(message))
            raise AmiActionError(action, message, result.response)

    async def _request(
        self,
        action: str,
        fields: Fields,
        *,
        limit: float | None,
        action_id: str | None = None,
        before_login: bool = False,
    ) -> AmiResult:
        pairs = self._field_pairs(fields)
        writer = self._writer
        if writer is None or not (self._logged_in or before_login):
            raise AmiNotConnected(f"AMI {self.name}: not connected ({action})")
        if action_id is None:
            action_id = self._next_id()
        # ActionID on the second line, as every recorded client request has it.
        data = encode_message([("Action", action), ("ActionID", action_id), *pairs])
        future: asyncio.Future[AmiResult] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = _Pending(action, future)
        if limit is None:
            limit = self._action_timeout
        try:
            async with asyncio.timeout(limit):
                try:
                    writer.write(data)
                    await writer.drain()
                except (OSError, RuntimeError) as exc:
                    raise AmiNotConnected(f"AMI {self.name}: write failed ({action})") from exc
                return await future
        except TimeoutError:
            raise AmiTimeout(f"AMI {self.name}: no reply to {action} within {limit} s") from None
        finally:
            self._pending.pop(action_id, None)
            _settle(future)

    def _fail_pending(self) -> None:
        pending, self._pending = self._pending, {}
        for entry in pending.values():
            if not entry.future.done():
                entry.future.set_exception(
                    AmiNotConnected(f"AMI {self.name}: connection lost ({entry.action})")
                )
        waiters, self._originate_waiters = self._originate_waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(AmiNotConnected(f"AMI {self.name}: connection lost"))

    # -- internals: reading and dispatch -------------------------------------

    def _dispatch(self, messages: list[AmiMessage]) -> None:
        pending = self._pending
        ignored = self._ignored
        listeners = self._event_listeners
        for message in messages:
            if not message.is_event:
                self._on_reply(message)
                continue
            self.events_received += 1
            if pending or self._originate_waiters:
                action_id = message.action_id
                if action_id is not None:
                    entry = pending.get(action_id)
                    if entry is not None and entry.collecting:
                        if _is_list_complete(message):
                            self._resolve(entry, message)
                        else:
                            entry.events.append(message)
                        continue
                    waiter = self._originate_waiters.get(action_id)
                    if (
                        waiter is not None
                        and not waiter.done()
                        and message.event == "OriginateResponse"
                    ):
                        waiter.set_result(message)
            name = message.event
            if name in ignored:
                continue
            for callback in listeners:
                try:
                    callback(message)
                except Exception:
                    logger.exception("AMI %s: event listener failed on %s", self.name, name)

    def _on_reply(self, message: AmiMessage) -> None:
        action_id = message.action_id
        entry = self._pending.get(action_id) if action_id is not None else None
        if entry is None:
            # A reply after its action timed out, or to nobody we know of.
            logger.debug("AMI %s: unmatched reply (ActionID %s)", self.name, action_id)
            return
        if (message.get("EventList") or "").lower() == "start":
            entry.response = message
            entry.collecting = True
            return
        if not entry.future.done():
            entry.future.set_result(AmiResult(response=message))

    @staticmethod
    def _resolve(entry: _Pending, complete: AmiMessage) -> None:
        entry.collecting = False
        if not entry.future.done() and entry.response is not None:
            entry.future.set_result(
                AmiResult(response=entry.response, events=entry.events, complete=complete)
            )

    async def _read_loop(self, reader: asyncio.StreamReader, parser: AmiParser) -> None:
        try:
            while True:
                data = await reader.read(_READ_SIZE)
                if not data:
                    return
                self.bytes_received += len(data)
                self._dispatch(parser.feed(data))
        finally:
            self._fail_pending()

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            try:
                await self._request("Ping", (), limit=self._action_timeout)
            except AmiNotConnected:
                return  # the read loop ends the connection and reports why
            except AmiTimeout:
                # A half-open TCP connection (peer gone without FIN/RST) never
                # ends the read; only an unanswered Ping reveals it.
                raise _KeepAliveFailed(f"no Ping reply within {self._action_timeout} s") from None

    # -- internals: connection -----------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff_initial
        while not self._stopping:
            try:
                await self._connection()
                if not self._stopping:
                    logger.warning("AMI %s: connection closed by Asterisk", self.name)
            except asyncio.CancelledError:
                raise
            except _LoginRejected as exc:
                logger.error("AMI %s: login rejected: %s", self.name, exc)
            except _KeepAliveFailed as exc:
                logger.warning("AMI %s: keep-alive failed: %s; reconnecting", self.name, exc)
            except AmiProtocolError as exc:
                logger.warning("AMI %s: protocol error: %s; reconnecting", self.name, exc)
            except (OSError, TimeoutError, AmiError) as exc:
                logger.warning(
                    "AMI %s: connection to %s:%s failed: %s",
                    self.name,
                    self._host,
                    self._port,
                    str(exc) or type(exc).__name__,
                )
            except Exception:
                logger.exception("AMI %s: unexpected error in the connection", self.name)
            if self._stopping:
                break
            if self._last_connection_logged_in:
                delay = self._backoff_initial
            # Jitter keeps several clients from reconnecting in lock-step after
            # an Asterisk restart.
            wait = delay * random.uniform(0.5, 1.0)
            logger.info("AMI %s: reconnecting in %.2f s", self.name, wait)
            await asyncio.sleep(wait)
            delay = min(delay * 2, self._backoff_max)

    async def _connection(self) -> None:
        """One connection, from connect to close."""
        self._last_connection_logged_in = False
        self.connect_attempts += 1
        # Not asyncio.wait_for: on Python 3.11 a cancel that races the
        # completed connect drops the new transport unclosed.
        async with asyncio.timeout(self._connect_timeout):
            reader, writer = await asyncio.open_connection(self._host, self._port)
        self._writer = writer
        parser = AmiParser()
        tasks: list[asyncio.Task[None]] = []
        try:
            async with asyncio.timeout(self._connect_timeout):
                while parser.banner is None:
                    data = await reader.read(_READ_SIZE)
                    if not data:
                        raise ConnectionError("closed before the AMI banner")
                    self.bytes_received += len(data)
                    self._dispatch(parser.feed(data))
            read_task = asyncio.create_task(self._read_loop(reader, parser))
            tasks.append(read_task)
            login = await self._request(
                "Login",
                [("Username", self._username), ("Secret", self._secret), ("Events", "on")],
                limit=self._action_timeout,
                before_login=True,
            )
            if not login.ok:
                raise _LoginRejected(login.message or "no reason given")
            self._on_login()
            tasks.append(asyncio.create_task(self._ping_loop()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            # Nothing awaits before the socket is closed: stop() may cancel
            # this task right here, and an await first would leak the socket.
            was_logged_in = self._logged_in
            self._logged_in = False
            self._connected_event.clear()
            self._writer = None
            writer.transport.abort()
            self._fail_pending()
            for task in tasks:
                task.cancel()
            if was_logged_in:
                self._last_connection_logged_in = True
                self._notify_disconnect()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _on_login(self) -> None:
        self._logged_in = True
        self._connected_event.set()
        if self._ever_logged_in:
            self.reconnects += 1
        self._ever_logged_in = True
        logger.info("AMI %s: logged in to %s:%s", self.name, self._host, self._port)
        for callback in self._connect_listeners:
            task = asyncio.create_task(self._run_connect_listener(callback))
            self._listener_tasks.add(task)
            task.add_done_callback(self._listener_tasks.discard)

    async def _run_connect_listener(self, callback: ConnectListener) -> None:
        try:
            await callback()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("AMI %s: connect listener failed", self.name)

    def _notify_disconnect(self) -> None:
        logger.warning("AMI %s: disconnected", self.name)
        for callback in self._disconnect_listeners:
            try:
                callback()
            except Exception:
                logger.exception("AMI %s: disconnect listener failed", self.name)
