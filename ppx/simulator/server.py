"""Serving a simulator function over PPX: the simulator side of the protocol.

``serve(fn, address)`` binds a ZeroMQ REP socket and answers requests: a
Handshake with the model's name, each Run by executing ``fn`` once, during
which every ``ppx.sample/observe/tag`` becomes a request to the engine. A
failing run (an exception in ``fn``, unsupported distributions, a confused
engine) is reported to the engine and the server keeps serving.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar, cast

import numpy as np
from numpy.typing import ArrayLike
from torch import Tensor
from torch.distributions import Distribution, MultivariateNormal

from ppx.effects import Effect, Handler
from ppx.errors import ProtocolError, UnsupportedDistribution, describe_exception
from ppx.protocol import (
    BATCHED_DRAWS,
    CAPABILITIES,
    ERROR_REPORT,
    MULTIVARIATE_NORMAL,
    PROTOCOL_VERSION,
    Replier,
    compatible,
    decode,
    encode,
    negotiate,
)
from ppx.protocol import messages as m
from ppx.simulator.local_draws import LocalDraws
from ppx.sites import as_value

__all__ = ["SimulatorServer", "serve"]

SYSTEM_NAME = "ppx (Python)"
_SLICE = 0.2  # seconds: longest uninterruptible wait of a server


_Reply = TypeVar("_Reply", m.SampleResult, m.ObserveResult, m.TagResult)


class _Abort(BaseException):  # a BaseException: it must pass user `except Exception`
    """Unwinds the simulator function when the engine abandons the run."""

    def __init__(self, reply: m.Message | None = None, pending: bytes | None = None) -> None:
        super().__init__()
        self.reply = reply
        self.pending = pending


class _ServedHandler(Handler):
    """Terminal handler while serving: each effect is a round trip to the engine.

    In a batched run (``local`` set), draws the simulator may make itself are
    made locally and reported in bulk with the next message, with the
    observes and tags (which need no answer).
    """

    def __init__(self, server: SimulatorServer, local: LocalDraws | None) -> None:
        self.server = server
        self.local = local
        self.last_address = ""

    def process(self, effect: Effect) -> None:
        self.last_address = effect.address
        self.dispatch[effect.type](self, effect)
        effect.done = True

    def process_sample(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        args = (effect.address, effect.name, distribution, effect.control)
        value = self.local.sample(*args) if self.local is not None else None
        effect.value = self.ask(*args, effect.replace) if value is None else value

    def process_observe(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        if self.local is not None:
            self.local.observe(effect.address, effect.name, distribution, effect.value)
        else:
            value = cast("ArrayLike | None", effect.value)
            message = m.Observe(effect.address, distribution, value, effect.name)
            self.server.exchange(message, m.ObserveResult)

    def process_tag(self, effect: Effect) -> None:
        if self.local is not None:
            self.local.tag(effect.address, effect.name, effect.value)
        else:
            value = cast("ArrayLike | None", effect.value)
            self.server.exchange(m.Tag(effect.address, value, effect.name), m.TagResult)

    def process_sampler(self, effect: Effect) -> None:
        distribution = self.server.checked(effect.distribution)
        args = (effect.address, effect.name, distribution, effect.control)

        def ask() -> float:
            return float(self.ask(*args))

        effect.value = ask if self.local is None else self.local.sampler(*args, ask)

    def draws(self) -> tuple[m.DrawBlock, ...]:
        """The local draws to report with the next message."""
        return self.local.flush() if self.local is not None else ()

    def ask(
        self,
        address: str,
        name: str | None,
        distribution: Distribution,
        control: bool,
        replace: bool = False,
    ) -> Tensor:
        """One Sample round trip: the engine chooses the value."""
        message = m.Sample(address, distribution, name, control, self.draws(), replace)
        return as_value(self.server.exchange(message, m.SampleResult).result, distribution)


class SimulatorServer:
    """A REP server running ``fn`` once per Run request.

    Arguments:
        fn: the simulator, a callable without arguments returning the result.
        address: ``ipc:///tmp/name`` or ``tcp://127.0.0.1:PORT``.
        model_name: reported to engines at the handshake.
        allow_remote: allow binding beyond loopback.
    """

    def __init__(
        self,
        fn: Callable[[], object],
        address: str,
        model_name: str | None = None,
        allow_remote: bool = False,
    ) -> None:
        self.fn = fn
        self.model_name = model_name or getattr(fn, "__qualname__", "simulator")
        self.replier = Replier(address, allow_remote)
        self.capabilities: frozenset[str] = frozenset()
        self.compatible = True
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
            data = self.replier.recv(timeout=_SLICE)
            while data is not None:
                data = self.handle(data)

    def handle(self, data: bytes) -> bytes | None:
        """Answer one request; return a request to handle next (a run was cut short)."""
        try:
            message = decode(data)
        except ProtocolError as error:
            self._reply_error("ProtocolError", str(error))
            return None
        if isinstance(message, m.Run):
            return self._run(message)
        if isinstance(message, m.Handshake):
            self._reply(self._handshake(message))
        elif isinstance(message, m.Reset):
            self._reply(m.Reset())
        else:
            self._reply_error("ProtocolError", f"unexpected {type(message).__name__} outside a run")
        return None

    def _handshake(self, message: m.Handshake) -> m.HandshakeResult:
        self.compatible = compatible(PROTOCOL_VERSION, message.protocol_version)
        self.capabilities = negotiate(CAPABILITIES, message.capabilities)
        if message.protocol_version is None:  # a pyprob 1.0.0 engine: answer in its terms
            return m.HandshakeResult(SYSTEM_NAME, self.model_name)
        return m.HandshakeResult(SYSTEM_NAME, self.model_name, PROTOCOL_VERSION, CAPABILITIES)

    def _run(self, run: m.Run) -> bytes | None:
        if not self.compatible:
            self._reply_error("HandshakeError", "incompatible protocol versions; handshake again")
            return None
        batched = BATCHED_DRAWS in self.capabilities and (run.record or run.replay)
        handler = _ServedHandler(self, LocalDraws(run) if batched else None)
        try:
            with handler:
                result = self.fn()
            self._reply(m.RunResult(_as_tensor_or_none(result), handler.draws()))
        except _Abort as abort:
            if abort.reply is not None:
                self._reply(abort.reply)
            return abort.pending
        except Exception as error:
            self._reply_error(
                type(error).__name__,
                describe_exception(error, handler.last_address),
                handler.last_address,
            )
        finally:
            self.runs += 1
        return None

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

    def exchange(self, message: m.Sample | m.Observe | m.Tag, expected: type[_Reply]) -> _Reply:
        """Send ``message`` as the reply to the pending request; return the next request."""
        self._reply(message)
        data = self._next_request()
        try:
            reply = decode(data)
        except ProtocolError as error:
            raise _Abort(reply=self._error_message("ProtocolError", str(error))) from None
        if isinstance(reply, expected):
            return reply
        if isinstance(reply, m.Reset):
            raise _Abort(reply=m.Reset())
        if isinstance(reply, (m.Run, m.Handshake)):
            raise _Abort(pending=data)  # the engine gave up on this run: start over
        raise _Abort(
            reply=self._error_message(
                "ProtocolError",
                f"expected {expected.__name__}, got {type(reply).__name__}",
                message.address,
            )
        )

    def _next_request(self) -> bytes:
        """Wait for the engine's next request; give up on the run if the server stops."""
        while True:
            data = self.replier.recv(timeout=_SLICE)
            if data is not None:
                return data
            if self._stop is not None and self._stop.is_set():
                raise _Abort()

    # -- replies --------------------------------------------------------------
    def _reply(self, message: m.Message) -> None:
        self.replier.send(encode(message))

    def _error_message(self, error_type: str, text: str, address: str = "") -> m.Message:
        if ERROR_REPORT in self.capabilities:
            return m.Error(error_type, text, address)
        print(f"ppx: {self.model_name}: {error_type}: {text}", file=sys.stderr)
        return m.Reset()

    def _reply_error(self, error_type: str, text: str, address: str = "") -> None:
        self._reply(self._error_message(error_type, text, address))


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
) -> None:
    """Serve ``fn`` as a PPX simulator at ``address``; blocks until stopped.

    SIGTERM and Ctrl-C stop the server cleanly (socket closed, ipc file gone).
    An address another process serves is refused (:class:`ppx.errors.AddressInUse`),
    never taken over.

    Arguments:
        fn: the simulator: a callable without arguments that calls
            ``ppx.sample``/``observe``/``tag`` and returns its result.
        address: ``ipc:///tmp/name`` or ``tcp://127.0.0.1:PORT``.
        model_name: the name engines see (default: ``fn``'s name).
        allow_remote: bind beyond loopback (e.g. ``tcp://*:5555``).
        stop: an event that ends serving when set (for threads).

    Raises:
        InvalidAddress: a malformed address, or beyond loopback without ``allow_remote``.
        AddressInUse: another process serves at ``address``.

    Example:
        >>> ppx.serve(simulator, "ipc:///tmp/gum")  # doctest: +SKIP
    """
    server = SimulatorServer(fn, address, model_name, allow_remote)
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
