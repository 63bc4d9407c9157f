"""Serving a simulator function over PPX: the simulator side of the protocol.

``serve(fn, address)`` binds a ZeroMQ ROUTER socket and answers requests: a
Handshake with the model's name, each Run by executing ``fn`` once, during
which every ``ppx.sample/observe/tag`` becomes a request to the engine. A
failing run (an exception in ``fn``, unsupported distributions, a confused
engine) is reported to the engine and the server keeps serving.

Several engines may share one server (MCMC chains on Dask workers, threads):
it serves one run at a time, to each engine in turn. While a run is served,
other engines' Runs wait in a queue (:mod:`ppx.simulator.engines`: first come,
first served; past ``max_waiting`` they are refused with an Error); their
Handshakes, Resets and malformed messages are answered at once, as they need
no simulation. A run ends early when its engine abandons it (a Reset, or a new
Run or Handshake in place of its answer, or any request from the new socket of
a PPX engine that reset its own: that request then takes its turn), when its
engine is gone (its socket closed: the reply cannot be delivered), or when its
engine leaves the server waiting ``engine_timeout`` seconds while other
engines wait (an engine that died mid-run, or hangs).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import NoReturn

import numpy as np
from torch.distributions import Distribution, MultivariateNormal

from ppx.errors import PPXError, ProtocolError, UnsupportedDistribution, describe_exception
from ppx.protocol import (
    BATCHED_DRAWS,
    CAPABILITIES,
    ERROR_REPORT,
    MULTIVARIATE_NORMAL,
    PROTOCOL_VERSION,
    Replier,
    Request,
    compatible,
    decode,
    encode,
    negotiate,
    same_engine,
)
from ppx.protocol import messages as m
from ppx.protocol.curve import ServerKeys
from ppx.simulator.engines import MAX_WAITING, Engines, EngineState
from ppx.simulator.local_draws import LocalDraws
from ppx.simulator.served_handler import Reply, ServedHandler

__all__ = ["SimulatorServer", "serve"]

SYSTEM_NAME = "ppx (Python)"
_SLICE = 0.2  # seconds: longest uninterruptible wait of a server
ENGINE_TIMEOUT = 10.0  # seconds a run's engine may keep others waiting (below engines' 30 s)


class _Abort(BaseException):  # a BaseException: it must pass user `except Exception`
    """Unwinds the simulator function when the engine abandons the run."""

    def __init__(
        self, reply: m.Message | None = None, pending: tuple[Request, m.Message] | None = None
    ) -> None:
        super().__init__()
        self.reply = reply  # the answer to the engine's last request
        self.pending = pending  # a request of the engine that replaces the run


class SimulatorServer:
    """A server running ``fn`` once per Run request, one run at a time, engines in turn.

    Arguments:
        fn: the simulator, a callable without arguments returning the result.
        address: ``ipc:///tmp/name`` or ``tcp://127.0.0.1:PORT``.
        model_name: reported to engines at the handshake.
        allow_remote: allow binding beyond loopback.
        max_message_bytes: the largest request accepted; ``None``: the
            environment variable ``PPX_MAX_MESSAGE_BYTES``, else 256 MiB.
        engine_timeout: seconds a run's engine may leave the server waiting
            for its answer while other engines wait, before the run is stopped
            (``None``: no limit).
        max_waiting: Runs that may wait for the server; more are refused.
    """

    def __init__(
        self,
        fn: Callable[[], object],
        address: str,
        model_name: str | None = None,
        allow_remote: bool = False,
        max_message_bytes: int | None = None,
        engine_timeout: float | None = ENGINE_TIMEOUT,
        max_waiting: int = MAX_WAITING,
        curve: ServerKeys | None = None,
    ) -> None:
        self.fn = fn
        self.model_name = model_name or getattr(fn, "__qualname__", "simulator")
        self.engines = Engines(max_waiting)
        self.engine_timeout = engine_timeout
        self.replier = Replier(address, allow_remote, max_message_bytes, curve)
        self.peer: tuple[bytes, ...] = ()  # the engine whose run is served
        self.capabilities: frozenset[str] = frozenset()  # what that engine negotiated
        self.runs = 0
        self._stop: threading.Event | None = None

    def close(self) -> None:
        """Close the socket."""
        self.replier.close()

    # -- one request ------------------------------------------------------
    def serve_forever(self, stop: threading.Event | None = None) -> None:
        """Answer requests until ``stop`` is set, or forever.

        Receives wait in 200 ms slices, never indefinitely: a signal (SIGTERM)
        delivered to one of ZeroMQ's own threads would not interrupt an
        indefinite wait, and Python runs signal handlers only between slices.
        """
        self._stop = stop
        while stop is None or not stop.is_set():
            waiting = self.engines.next()
            if waiting is not None:
                self._run(waiting.request.peer, waiting.run)
                continue
            request = self.replier.recv(timeout=_SLICE)
            if request is not None:
                self.handle(request)

    def handle(self, request: Request) -> None:
        """Answer one request while no run is served: serve a Run to its end, others at once."""
        message = self._decoded(request)
        if isinstance(message, m.Run):
            self._run(request.peer, message)
        elif message is not None:
            self._answer(request.peer, message)

    def _decoded(self, request: Request) -> m.Message | None:
        """The request's message; ``None`` once a malformed one is answered with an error."""
        try:
            return decode(request.data)
        except PPXError as error:  # malformed, or a distribution with invalid parameters
            kind = type(error).__name__
            self._send(request.peer, self._error_message(request.peer, kind, str(error)))
            return None

    def _answer(self, peer: tuple[bytes, ...], message: m.Message) -> None:
        """Answer a request that needs no simulation (anything but a Run)."""
        if isinstance(message, m.Handshake):
            reply: m.Message = self._handshake(peer, message)
        elif isinstance(message, m.Reset):
            reply = m.Reset()
        else:
            reply = self._error_message(
                peer,
                "ProtocolError",
                f"unexpected {type(message).__name__} outside a run: this engine has no run "
                "in progress (did it abandon it, or leave it unanswered for "
                f"{self.engine_timeout} s while other engines waited?)",
            )
        self._send(peer, reply)

    def _later(self, request: Request, message: m.Message) -> None:
        """A request that comes while another run is served: queue a Run, answer the rest."""
        if not isinstance(message, m.Run):
            self._answer(request.peer, message)
        elif not self.engines.wait(request, message):
            text = (
                f"simulator {self.model_name!r} at {self.replier.address} is busy: "
                f"{self.engines.max_waiting} runs of other engines wait already; try again later"
            )
            self._send(request.peer, self._error_message(request.peer, "ServerBusy", text))

    def _handshake(self, peer: tuple[bytes, ...], message: m.Handshake) -> m.HandshakeResult:
        theirs = message.protocol_version
        state = EngineState(
            compatible(PROTOCOL_VERSION, theirs), negotiate(CAPABILITIES, message.capabilities)
        )
        self.engines.shook_hands(peer, state)
        if theirs is None:  # a pyprob 1.0.0 engine: answer in its terms
            return m.HandshakeResult(SYSTEM_NAME, self.model_name)
        return m.HandshakeResult(SYSTEM_NAME, self.model_name, PROTOCOL_VERSION, CAPABILITIES)

    def _run(self, peer: tuple[bytes, ...], run: m.Run) -> None:
        state = self.engines.state(peer)
        if not state.compatible:
            text = "incompatible protocol versions; handshake again"
            self._send(peer, self._error_message(peer, "HandshakeError", text))
            return
        self.peer, self.capabilities = peer, state.capabilities
        batched = BATCHED_DRAWS in self.capabilities and (run.record or run.replay)
        try:
            local = LocalDraws(run) if batched else None
        except ProtocolError as error:  # a malformed replay block
            self._reply_error("ProtocolError", str(error))
            self.peer = ()
            return
        handler = ServedHandler(self, local)
        try:
            with handler:
                result = self.fn()
            self._reply(m.RunResult(_as_tensor_or_none(result), handler.draws()))
        except _Abort as abort:
            if abort.reply is not None:
                self._reply(abort.reply)
            if abort.pending is not None:
                self._later(*abort.pending)
        except Exception as error:
            self._reply_error(
                type(error).__name__,
                describe_exception(error, handler.last_address),
                handler.last_address,
            )
        finally:
            self.runs += 1
            self.peer = ()

    # -- inside a run -------------------------------------------------------
    def checked(self, distribution: Distribution | None) -> Distribution:
        """``distribution``, refused before sending if the engine cannot decode it."""
        if distribution is None:
            raise UnsupportedDistribution("a draw needs a distribution, got None")
        if isinstance(distribution, MultivariateNormal) and (
            MULTIVARIATE_NORMAL not in self.capabilities
        ):
            raise UnsupportedDistribution(
                "the engine did not announce the 'multivariate_normal' extension "
                "(a PPX 1.0.0 peer such as pyprob cannot receive MultivariateNormal)"
            )
        return distribution

    def exchange(self, message: m.Sample | m.Observe | m.Tag, expected: type[Reply]) -> Reply:
        """Send ``message`` as the reply to the pending request; return the next request."""
        if not self._reply(message):
            self._stop_run("its engine is gone (its socket closed)")
        data = self._next_request()
        try:
            reply = decode(data)
        except ProtocolError as error:
            text = str(error)
            raise _Abort(reply=self._error_message(self.peer, "ProtocolError", text)) from None
        if isinstance(reply, expected):
            return reply
        if isinstance(reply, m.Reset):
            raise _Abort(reply=m.Reset())
        if isinstance(reply, (m.Run, m.Handshake)):  # the engine gave up on this run
            raise _Abort(pending=(Request(self.peer, data), reply))
        raise _Abort(
            reply=self._error_message(
                self.peer,
                "ProtocolError",
                f"expected {expected.__name__}, got {type(reply).__name__}",
                message.address,
            )
        )

    def _next_request(self) -> bytes:
        """The run's engine's next request; other engines' are queued or answered meanwhile.

        The run is given up when the server stops, or when its engine keeps
        others waiting longer than ``engine_timeout``.
        """
        asked = time.monotonic()
        while True:
            request = self.replier.recv(timeout=_SLICE)
            if request is not None:
                if request.peer == self.peer:
                    return request.data
                message = self._decoded(request)
                pending = None if message is None else (request, message)
                if same_engine(request.peer, self.peer):  # it reset its socket: run given up
                    raise _Abort(pending=pending)
                if pending is not None:
                    self._later(*pending)
            if self._stop is not None and self._stop.is_set():
                raise _Abort()
            timeout = self.engine_timeout
            if self.engines.waiting and timeout is not None and time.monotonic() - asked > timeout:
                waiting = len(self.engines.waiting)
                self._stop_run(f"its engine did not answer within {timeout} s ({waiting} waiting)")

    def _stop_run(self, why: str) -> NoReturn:
        """Give up the run, saying why on stderr (its engine cannot be told)."""
        print(f"ppx: {self.model_name}: stopped a run: {why}", file=sys.stderr, flush=True)
        raise _Abort()

    # -- replies --------------------------------------------------------------
    def _send(self, peer: tuple[bytes, ...], message: m.Message) -> bool:
        """Send ``message`` to ``peer``; ``False`` if that engine is gone."""
        return self.replier.send(peer, encode(message))

    def _reply(self, message: m.Message) -> bool:
        """Answer the engine whose run is served; ``False`` if it is gone."""
        return self.replier.send(self.peer, encode(message))

    def _error_message(
        self, peer: tuple[bytes, ...], error_type: str, text: str, address: str = ""
    ) -> m.Message:
        """An Error for ``peer`` if it announced ``error_report``, else a Reset (logged here)."""
        if ERROR_REPORT in self.engines.state(peer).capabilities:
            return m.Error(error_type, text, address)
        print(f"ppx: {self.model_name}: {error_type}: {text}", file=sys.stderr)
        return m.Reset()

    def _reply_error(self, error_type: str, text: str, address: str = "") -> None:
        self._reply(self._error_message(self.peer, error_type, text, address))


def _as_tensor_or_none(result: object) -> np.ndarray | None:
    if result is None:
        return None
    try:
        return np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError):
        return None  # a non-numeric result stays on the simulator side


def serve(
    fn: Callable[[], object],
    address: str,
    *,
    model_name: str | None = None,
    allow_remote: bool = False,
    stop: threading.Event | None = None,
    max_message_bytes: int | None = None,
    engine_timeout: float | None = ENGINE_TIMEOUT,
    curve: ServerKeys | None = None,
) -> None:
    """Serve ``fn`` as a PPX simulator at ``address``; blocks until stopped.

    SIGTERM and Ctrl-C stop the server cleanly (socket closed, ipc file gone).
    An address another process serves is refused (:class:`ppx.errors.AddressInUse`),
    never taken over. Several engines may connect: each gets whole runs, in
    turn (see :class:`SimulatorServer`).

    Arguments:
        fn: the simulator: a callable without arguments that calls
            ``ppx.sample``/``observe``/``tag`` and returns its result.
        address: ``ipc:///tmp/name`` or ``tcp://127.0.0.1:PORT``.
        model_name: the name engines see (default: ``fn``'s name).
        allow_remote: bind beyond loopback (e.g. ``tcp://*:5555``).
        stop: an event that ends serving when set (for threads).
        max_message_bytes: the largest request accepted; ``None``: the
            environment variable ``PPX_MAX_MESSAGE_BYTES``, else 256 MiB.
        engine_timeout: seconds a run's engine may keep other engines waiting
            for its answer before its run is stopped (``None``: no limit).
        curve: CurveZMQ keys (:class:`ppx.protocol.curve.ServerKeys`): only the
            admitted clients are served, encrypted; needed beyond loopback.
            ``None``: ``PPX_CURVE_SECRET`` and ``PPX_CURVE_CLIENTS``, if set.

    Raises:
        InvalidAddress: a malformed address, or beyond loopback without
            ``allow_remote`` and CurveZMQ keys.
        AddressInUse: another process serves at ``address``.

    Example:
        >>> ppx.serve(simulator, "ipc:///tmp/gum")  # doctest: +SKIP
    """
    server = SimulatorServer(
        fn,
        address,
        model_name,
        allow_remote,
        max_message_bytes=max_message_bytes,
        engine_timeout=engine_timeout,
        curve=curve,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_signal)
    print(f"ppx: serving {server.model_name!r} at {address}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
