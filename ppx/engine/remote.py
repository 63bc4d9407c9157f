"""A simulator in another process, driven over PPX: :class:`RemoteModel`."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TypedDict

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from ppx.engine.blocks import record_blocks, replay_blocks
from ppx.engine.model import Model, SimulatorInfo
from ppx.engine.no_reply import missing_reply, not_serving
from ppx.engine.process import SimulatorProcess
from ppx.engine.recorder import DEFAULT_MAX_TRACE_LENGTH, Recorder
from ppx.engine.streams import run_seed
from ppx.errors import (
    HandshakeError,
    InvalidDistribution,
    InvalidParameters,
    ProtocolError,
    SimulatorCrashed,
    SimulatorError,
    SimulatorTimeout,
    TraceTooLong,
)
from ppx.protocol import (
    BATCHED_DRAWS,
    CAPABILITIES,
    PROTOCOL_VERSION,
    Requester,
    compatible,
    decode,
    encode,
    encode_scalar_result,
    negotiate,
)
from ppx.protocol import messages as m
from ppx.protocol.curve import ClientKeys
from ppx.trace import Trace

__all__ = ["RemoteModel"]

SYSTEM_NAME = "ppx (Python engine)"
_CACHE_LIMIT = 4096


class SpawnArguments(TypedDict):
    """How :meth:`RemoteModel.spawn` started a simulator: enough to start it again."""

    argv: list[str]
    timeout: float | None
    startup_timeout: float | None
    retries: int
    env: dict[str, str] | None
    cwd: str | None
    batched: bool
    max_trace_length: int | None
    max_message_bytes: int | None


class RemoteModel(Model):
    """A PPX simulator served at ``address``, by PPX, pyprob_cpp or anything speaking PPX.

    Arguments:
        address: where the simulator serves (``ipc://...`` or ``tcp://...``).
        timeout: seconds to wait for each reply before :class:`SimulatorTimeout`
            (``None``: no limit).
        handshake_timeout: seconds to wait for the handshake; ``None``: ``timeout``.
        batched: use the ``batched_draws`` extension when the simulator offers
            it (uncontrolled draws made locally and reported in bulk, known
            values sent with the run); ``False`` forces a round trip per draw.
        max_trace_length: draws one run may make before :class:`TraceTooLong`
            (``None``: no limit); the simulator is told to abandon that run.
        max_message_bytes: the largest reply accepted; ``None``: the environment
            variable ``PPX_MAX_MESSAGE_BYTES``, else 256 MiB. A bigger one is
            dropped by ZeroMQ with the connection: :class:`SimulatorDisconnected`.
        curve: CurveZMQ client keys for a server that requires them
            (:class:`ppx.protocol.curve.ClientKeys`); ``None``: the environment's
            ``PPX_CURVE_SECRET`` and ``PPX_CURVE_SERVER_KEY``, if set (Dask
            workers read them there too). A server that requires keys never
            answers a client without the admitted ones: :class:`SimulatorTimeout`.

    Raises:
        InvalidAddress: a malformed address.
        SimulatorUnreachable: nothing listened at ``address`` for the whole
            handshake timeout.
        SimulatorTimeout: something listens there but did not answer the handshake.

    Example:
        >>> with ppx.RemoteModel.spawn(["python", "-m", "ppx.simulators.gaussian"]) as model:
        ...     trace = model.run()
    """

    def __init__(
        self,
        address: str,
        *,
        timeout: float | None = 30.0,
        handshake_timeout: float | None = None,
        batched: bool = True,
        max_trace_length: int | None = DEFAULT_MAX_TRACE_LENGTH,
        max_message_bytes: int | None = None,
        curve: ClientKeys | None = None,
        _process: SimulatorProcess | None = None,
        _retries: int = 0,
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.handshake_timeout = timeout if handshake_timeout is None else handshake_timeout
        self.batched = batched
        self.max_trace_length = max_trace_length
        self.max_message_bytes = max_message_bytes  # as given: None reads the environment
        self.process = _process
        self.retries = _retries
        self.name = address
        self.spawn_arguments: SpawnArguments | None = None  # set by spawn(): how to respawn
        self.peer_system = ""
        self.capabilities: frozenset[str] = frozenset()
        self._decoded: dict[bytes, m.Message] = {}
        self._handshake_due = False  # a reset socket is a new engine to the server: handshake
        alive = _process.alive if _process else None
        self._requester = Requester(address, alive, max_message_bytes, curve)
        self._finalizer = weakref.finalize(self, _release, self._requester, _process)
        try:
            self._handshake()
        except BaseException:
            self.close()
            raise

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        *,
        address: str | None = None,
        timeout: float | None = 30.0,
        startup_timeout: float | None = 120.0,
        retries: int = 1,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        batched: bool = True,
        max_trace_length: int | None = DEFAULT_MAX_TRACE_LENGTH,
        max_message_bytes: int | None = None,
    ) -> RemoteModel:
        """Start ``argv`` as a simulator process and connect to it; the model owns it.

        ``--address ADDRESS`` is appended to ``argv`` (or substituted for
        ``{address}``); by default a private ipc path. A crashed or hung process
        is restarted and the run retried up to ``retries`` times. A process that
        exits before it serves fails at once (:class:`SimulatorCrashed`, quoting
        its stderr); one that does not serve within ``startup_timeout`` seconds
        (``None``: no limit) fails with :class:`SimulatorTimeout`. The other
        keywords are :class:`RemoteModel`'s (``max_message_bytes`` limits this
        engine's socket; the simulator reads ``PPX_MAX_MESSAGE_BYTES``).
        """
        process = SimulatorProcess(argv, address, env, cwd)
        try:
            model = cls(
                process.address,
                timeout=timeout,
                handshake_timeout=math.inf if startup_timeout is None else startup_timeout,
                batched=batched,
                max_trace_length=max_trace_length,
                max_message_bytes=max_message_bytes,
                _process=process,
                _retries=retries,
            )
        except BaseException:
            process.cleanup()
            raise
        model.spawn_arguments = SpawnArguments(
            argv=list(argv),
            timeout=timeout,
            startup_timeout=startup_timeout,
            retries=retries,
            env=None if env is None else dict(env),
            cwd=cwd,
            batched=batched,
            max_trace_length=max_trace_length,
            max_message_bytes=max_message_bytes,
        )
        return model

    def describe(self) -> SimulatorInfo:
        """The simulator's name and how it runs: the argv PPX spawned, or its address."""
        if self.spawn_arguments is not None:
            return SimulatorInfo(name=self.name, argv=list(self.spawn_arguments["argv"]))
        return SimulatorInfo(name=self.name, address=self.address)

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Close the socket and stop the owned process, if any."""
        self._finalizer()

    def restart(self) -> None:
        """Restart the owned simulator process and handshake again."""
        if self.process is None:
            raise RuntimeError(f"cannot restart {self.name!r}: its process is not owned by PPX")
        self.process.restart()
        self._requester.reset()
        self._handshake()

    def record(self, recorder: Recorder) -> Trace:
        """Execute the program once (see :meth:`Model.record`); restarts a crashed spawn.

        A retried run starts from a fresh copy of ``recorder``'s settings, so
        nothing of the failed attempt leaks into the returned trace.
        """
        for attempt in range(self.retries + 1):
            attempt_recorder = recorder if attempt == 0 else recorder.fresh()
            try:
                return super().record(attempt_recorder)
            except (SimulatorCrashed, SimulatorTimeout):
                if self.process is None or attempt == self.retries:
                    raise
                self.restart()
        raise AssertionError("unreachable")

    # -- protocol ---------------------------------------------------------------
    def _request(self, data: bytes, last_address: str, timeout: float | None) -> bytes:
        self._requester.send(data)
        reply = self._requester.recv(timeout)
        if isinstance(reply, bytes):
            return reply
        self._requester.reset()
        self._handshake_due = True
        limit = self._requester.max_message_bytes
        raise missing_reply(reply, self.name, self.address, timeout, last_address, limit)

    def _handshake(self, again: bool = False) -> None:
        """Handshake; ``again``: after a reset, to a simulator that answered before.

        The server keeps each engine's negotiated extensions by socket, and a
        reset socket is a new one to it.
        """
        hello = encode(m.Handshake(SYSTEM_NAME, PROTOCOL_VERSION, CAPABILITIES))
        data = self._request(hello, "", self.timeout) if again else self._first_contact(hello)
        reply = decode(data)
        if not isinstance(reply, m.HandshakeResult):
            raise HandshakeError(
                f"simulator at {self.address} answered the handshake with "
                f"{type(reply).__name__}, not HandshakeResult"
            )
        theirs = reply.protocol_version
        if not compatible(PROTOCOL_VERSION, theirs):
            raise HandshakeError(
                f"incompatible PPX versions: this engine speaks {PROTOCOL_VERSION}, "
                f"simulator {reply.model_name!r} at {self.address} speaks {theirs}"
            )
        self.name = reply.model_name
        self.peer_system = reply.system_name
        self.capabilities = negotiate(CAPABILITIES, reply.capabilities)
        self._handshake_due = False

    def _first_contact(self, hello: bytes) -> bytes:
        """The first handshake's reply, or the clearest error for its absence.

        Connections that drop are waited out: before a simulator serves, a
        server going away or a peer that is not a PPX server may drop one.
        """
        self._requester.send(hello)
        reply = self._requester.recv(self.handshake_timeout, drops=False)
        if isinstance(reply, bytes):
            return reply
        self._requester.reset()
        limit, waited = self._requester.max_message_bytes, self.handshake_timeout
        error = missing_reply(reply, self.name, self.address, waited, "", limit)
        raise not_serving(error, self.address, waited, self.process)

    def _decode(self, data: bytes, recorder: Recorder) -> m.Message:
        message = self._decoded.get(data)
        if message is not None:
            return message
        try:
            message = decode(data)
        except InvalidDistribution as error:
            self._resync(recorder)
            raise InvalidDistribution(f"simulator {self.name!r}: {error}") from None
        except ProtocolError as error:
            self._resync(recorder)
            raise ProtocolError(f"from simulator {self.name!r}: {error}") from None
        if isinstance(message, (m.Sample, m.Observe)) and not message.draws:
            if len(self._decoded) >= _CACHE_LIMIT:
                self._decoded.clear()
            self._decoded[data] = message
        return message

    def _resync(self, recorder: Recorder) -> None:
        """Tell the simulator to abandon the run (Reset) and wait for its ack."""
        self._request(encode(m.Reset()), recorder.last_address, self.timeout)

    def _run_request(self, recorder: Recorder) -> bytes:
        """The Run message: with the batched-draws fields where both sides support them."""
        seed = run_seed()  # drawn in any case: the engine's stream advances as in-process
        if not self.batched or BATCHED_DRAWS not in self.capabilities:
            return _RUN
        replay = replay_blocks(recorder.observed, recorder.known)
        return encode(m.Run(record=True, seed=seed, replay=replay))

    def _execute(self, recorder: Recorder) -> Tensor | None:
        if self._handshake_due:
            self._handshake(again=True)
        recorder.limit(self.max_trace_length, self.name, f" at {self.address}")
        self._requester.forget_drops()
        timeout = self.timeout
        data = self._request(self._run_request(recorder), recorder.last_address, timeout)
        while True:
            message = self._decode(data, recorder)
            try:
                draws = getattr(message, "draws", None)
                if draws:
                    record_blocks(recorder, draws)
                if isinstance(message, m.RunResult):
                    return _as_torch(message.result)
                answer = _ANSWERS.get(type(message))
                if answer is None:
                    self._resync(recorder)
                    raise ProtocolError(
                        f"simulator {self.name!r} sent {type(message).__name__} during a run"
                    )
                reply = answer(self, message, recorder)
            except TraceTooLong:
                self._resync(recorder)  # the simulator abandons the run: the model stays usable
                raise
            data = self._request(reply, recorder.last_address, timeout)

    # -- one answer per message type a simulator sends during a run -------------
    def _on_sample(self, message: m.Sample, recorder: Recorder) -> bytes:
        value = recorder.sample(
            message.address, message.name, message.distribution, message.control, message.replace
        )
        if not value.shape:
            return encode_scalar_result(float(value))
        return encode(m.SampleResult(value))

    def _on_observe(self, message: m.Observe, recorder: Recorder) -> bytes:
        recorder.observe(message.address, message.name, message.distribution, message.value)
        return _OBSERVE_RESULT

    def _on_tag(self, message: m.Tag, recorder: Recorder) -> bytes:
        recorder.tag(message.name or message.address, _as_torch(message.value))
        return _TAG_RESULT

    def _on_error(self, message: m.Error, recorder: Recorder) -> bytes:
        error = InvalidParameters if message.error_type == "InvalidDistribution" else SimulatorError
        address = message.address or recorder.last_address
        raise error(
            f"simulator {self.name!r} failed at address {address!r}: {message.message}",
            error_type=message.error_type,
            simulator=self.name,
            address=address,
        )

    def _on_reset(self, message: m.Reset, recorder: Recorder) -> bytes:
        raise ProtocolError(
            f"simulator {self.name!r} reset the run (it lost sync) after address "
            f"{recorder.last_address!r}; see the simulator's stderr"
        )


# The message types a simulator may send during a run, before its RunResult.
_ANSWERS: dict[type, Callable[..., bytes]] = {
    m.Sample: RemoteModel._on_sample,
    m.Observe: RemoteModel._on_observe,
    m.Tag: RemoteModel._on_tag,
    m.Error: RemoteModel._on_error,
    m.Reset: RemoteModel._on_reset,
}


def _as_torch(value: ArrayLike | None) -> Tensor | None:
    return None if value is None else torch.from_numpy(np.asarray(value, dtype=np.float64))


def _release(requester: Requester, process: SimulatorProcess | None) -> None:
    requester.close()
    if process is not None:
        process.cleanup()


_RUN = encode(m.Run())
_OBSERVE_RESULT = encode(m.ObserveResult())
_TAG_RESULT = encode(m.TagResult())
