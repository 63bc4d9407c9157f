"""The PPX wire protocol: schema, message objects, codec and ZeroMQ transport.

This layer stands alone: it imports nothing else of PPX. The rest of PPX uses
it through the names exported here.
"""

from __future__ import annotations

from . import messages
from .addresses import check_address, check_bind_address, listening
from .capabilities import (
    BATCHED_DRAWS,
    CAPABILITIES,
    ERROR_REPORT,
    MULTIVARIATE_NORMAL,
    PROTOCOL_VERSION,
    compatible,
    negotiate,
)
from .codec import build, decode, encode, encode_scalar_result
from .distributions import (
    DISTRIBUTION_KINDS,
    RawDistribution,
    distribution_arguments,
    distribution_from_parameters,
    distribution_kind,
    distribution_parameters,
)
from .errors import (
    AddressInUse,
    HandshakeError,
    InvalidAddress,
    InvalidDistribution,
    PPXError,
    ProtocolError,
    UnsupportedDistribution,
)
from .transport import (
    DEFAULT_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_ENV,
    Replier,
    Request,
    Requester,
    message_limit,
    same_engine,
)

__all__ = [
    "BATCHED_DRAWS",
    "CAPABILITIES",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DISTRIBUTION_KINDS",
    "ERROR_REPORT",
    "MAX_MESSAGE_ENV",
    "MULTIVARIATE_NORMAL",
    "PROTOCOL_VERSION",
    "AddressInUse",
    "HandshakeError",
    "InvalidAddress",
    "InvalidDistribution",
    "PPXError",
    "ProtocolError",
    "RawDistribution",
    "Replier",
    "Request",
    "Requester",
    "UnsupportedDistribution",
    "build",
    "check_address",
    "check_bind_address",
    "compatible",
    "decode",
    "distribution_arguments",
    "distribution_from_parameters",
    "distribution_kind",
    "distribution_parameters",
    "encode",
    "encode_scalar_result",
    "listening",
    "message_limit",
    "messages",
    "negotiate",
    "same_engine",
]
