"""The proposal network of inference compilation: an LSTM over a trace's controlled draws.

At each controlled draw of a run the network sees the observation's embedding,
the previous draw's value, and embeddings of the current and previous
addresses and distribution kinds; its LSTM state then gives, through a head
made for that address, a proposal distribution for the draw. Address
embeddings, value embeddings and heads are created lazily, the first time an
address is seen, so one network covers programs whose trace structure changes
from run to run.

References:
    Le, Baydin & Wood, "Inference Compilation and Universal Probabilistic
    Programming", AISTATS 2017.
    Baydin et al., "Etalumis: Bringing Probabilistic Programming to Scientific
    Simulators at Scale", SC19 (arXiv:1907.03382).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import cast

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor, nn
from torch.distributions import Distribution

from ppx.inference.ic.dataset import TraceRecord
from ppx.inference.ic.proposals import ProposalHead, proposal_head
from ppx.protocol import DISTRIBUTION_KINDS, distribution_from_parameters

__all__ = ["AddressInfo", "ProposalNetwork", "NetworkConfig"]


@dataclass(frozen=True)
class NetworkConfig:
    """The sizes of an :class:`ProposalNetwork` (saved with it).

    Attributes:
        observation_size: width of the observation embedding.
        address_size: width of an address embedding.
        kind_size: width of a distribution-kind embedding.
        value_size: width of a value embedding.
        hidden_size: LSTM state width.
        lstm_layers: stacked LSTM layers.
        components: mixture components of the continuous proposals.
        embedding: ``"mlp"`` (default) or ``"cnn3d"`` (one 3-d observation, e.g. a
            calorimeter image).
    """

    observation_size: int = 64
    address_size: int = 16
    kind_size: int = 4
    value_size: int = 16
    hidden_size: int = 64
    lstm_layers: int = 1
    components: int = 5
    embedding: str = "mlp"

    def __post_init__(self) -> None:
        for name in ("observation_size", "address_size", "kind_size", "value_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.hidden_size < 1 or self.lstm_layers < 1 or self.components < 1:
            raise ValueError("hidden_size, lstm_layers and components must be positive")
        if self.embedding not in ("mlp", "cnn3d"):
            raise ValueError(f"embedding must be 'mlp' or 'cnn3d', got {self.embedding!r}")

    @property
    def input_size(self) -> int:
        """Width of the LSTM input at one step."""
        return self.observation_size + self.value_size + 2 * (self.address_size + self.kind_size)


@dataclass(frozen=True)
class AddressInfo:
    """What the network knows of one address: its kind and an example prior's parameters."""

    index: int
    kind: str
    parameters: tuple[list[float] | float, ...] = field(default=())

    def prior(self) -> Distribution:
        """An example prior of the address (shapes of its head: K, dimension...)."""
        return distribution_from_parameters(self.kind, self.parameters)


class ProposalNetwork(nn.Module):
    """Proposals for every controlled draw of a simulator, given its observation.

    The trainable part; :class:`ppx.inference.ic.InferenceNetwork` adds ``fit``,
    ``save`` and ``load``. Use either as the ``proposal`` of
    :func:`ppx.inference.importance_sampling`.

    Arguments:
        simulator: the simulator's name (checked against models and datasets).
        observation_shapes: the shape of each observation, by observe name.
        config: sizes of the network.
        observation_mean / observation_std: standardisation of the flat observation.
        embedding: a user module mapping ``[B, *shape]`` observations to
            ``[B, config.observation_size]`` instead of the built-in one.
    """

    observation_mean: Tensor  # buffers, registered in __init__
    observation_std: Tensor

    def __init__(
        self,
        simulator: str,
        observation_shapes: Mapping[str, tuple[int, ...]],
        config: NetworkConfig | None = None,
        *,
        observation_mean: Tensor | None = None,
        observation_std: Tensor | None = None,
        embedding: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.simulator = simulator
        self.observation_shapes = {name: tuple(shape) for name, shape in observation_shapes.items()}
        self.config = config = config or NetworkConfig()
        width = sum(math.prod(shape) for shape in self.observation_shapes.values())
        self.register_buffer("observation_mean", _or(observation_mean, torch.zeros(width)))
        self.register_buffer("observation_std", _or(observation_std, torch.ones(width)))
        self.embed_observation = embedding or _embedding(config, self.observation_shapes)
        self.kind_embedding = nn.Embedding(len(DISTRIBUTION_KINDS), config.kind_size)
        self.lstm = nn.LSTM(config.input_size, config.hidden_size, config.lstm_layers)
        self.addresses: dict[str, AddressInfo] = {}
        self.address_embeddings = nn.ParameterDict()
        self.value_embeddings = nn.ModuleDict()
        self.heads = nn.ModuleDict()
        self.history: dict[str, list[float]] = {}  # the training and validation losses

    # -- the address vocabulary ------------------------------------------------------
    def knows(self, address: str) -> bool:
        """Whether ``address`` was seen in training (else its draws come from the prior)."""
        return address in self.addresses

    def add_addresses(self, records: Sequence[TraceRecord]) -> list[nn.Parameter]:
        """Create embeddings and heads for addresses not seen before; return their parameters."""
        before = {id(p) for p in self.parameters()}
        for record in records:
            for address, kind, parameters in zip(
                record.addresses, record.kinds, record.parameters, strict=True
            ):
                if address not in self.addresses:
                    self._add_address(address, kind, tuple(p.tolist() for p in parameters))
        return [p for p in self.parameters() if id(p) not in before]

    def _add_address(
        self, address: str, kind: str, parameters: tuple[list[float] | float, ...]
    ) -> None:
        info = AddressInfo(len(self.addresses), kind, parameters)
        prior = info.prior()
        key = _key(info.index)
        config = self.config
        device = self.observation_mean.device
        self.address_embeddings[key] = nn.Parameter(torch.randn(config.address_size, device=device))
        value_width = max(1, math.prod(prior.event_shape))
        self.value_embeddings[key] = nn.Linear(value_width, config.value_size).to(device)
        self.heads[key] = proposal_head(
            kind, prior, config.hidden_size, components=config.components
        ).to(device)
        self.addresses[address] = info

    def head(self, address: str) -> ProposalHead:
        """The proposal head of a known address."""
        return cast(ProposalHead, self.heads[_key(self.addresses[address].index)])

    # -- observations ----------------------------------------------------------------
    def observation_tensor(self, observe: Mapping[str, ArrayLike]) -> Tensor:
        """The observations as one standardised row ``[1, width]``, checked against the layout.

        Raises:
            ValueError: a missing observation, or one of the wrong shape.
        """
        parts = []
        for name, shape in self.observation_shapes.items():
            if name not in observe:
                raise ValueError(
                    f"the network for {self.simulator!r} needs observation {name!r} "
                    f"(it was trained on {sorted(self.observation_shapes)})"
                )
            value = np.asarray(observe[name], dtype=np.float64)
            if value.shape != shape and value.size != math.prod(shape):
                raise ValueError(
                    f"observation {name!r} of {self.simulator!r} has shape {value.shape}; "
                    f"the network was trained on shape {shape}"
                )
            parts.append(torch.as_tensor(value.reshape(-1), dtype=torch.float32))
        return torch.cat(parts).unsqueeze(0).to(self.observation_mean.device)

    def embed(self, flat: Tensor) -> Tensor:
        """Standardise ``[B, width]`` observations and embed them: ``[B, observation_size]``."""
        standard = (flat - self.observation_mean) / self.observation_std
        if self.config.embedding == "cnn3d":
            (shape,) = self.observation_shapes.values()
            standard = standard.reshape(len(standard), 1, *shape)
        return self.embed_observation(standard)

    # -- one step of the LSTM ----------------------------------------------------------
    def step_input(
        self,
        observation: Tensor,
        address: str,
        previous: tuple[str, Tensor] | None,
    ) -> Tensor:
        """The LSTM input ``[B, input_size]`` at a draw of ``address`` after ``previous``.

        Arguments:
            observation: the observation embedding ``[B, observation_size]``.
            address: the current draw's address (known to the network).
            previous: the previous controlled draw's address and values ``[B, ...]``.
        """
        batch = len(observation)
        current = self._address_part(address, batch)
        config = self.config
        if previous is None or previous[0] not in self.addresses:
            zeros = observation.new_zeros(
                batch, config.value_size + config.address_size + config.kind_size
            )
            return torch.cat([observation, current, zeros], dim=1)
        last, values = previous
        value = self.value_embeddings[_key(self.addresses[last].index)](_squash(values, batch))
        return torch.cat([observation, current, value, self._address_part(last, batch)], dim=1)

    def _address_part(self, address: str, batch: int) -> Tensor:
        info = self.addresses[address]
        embedding = self.address_embeddings[_key(info.index)]
        kind = self.kind_embedding.weight[DISTRIBUTION_KINDS.index(info.kind)]
        return torch.cat([embedding, kind]).expand(batch, -1)

    # -- training loss -------------------------------------------------------------------
    def loss(self, records: Sequence[TraceRecord]) -> Tensor:
        """Mean negative log proposal density of ``records`` (all of one trace type)."""
        device = self.observation_mean.device
        flat = torch.stack([self._flat_observations(r) for r in records]).to(device)
        observation = self.embed(flat)
        addresses = records[0].addresses
        if not addresses:
            return observation.sum() * 0.0
        inputs, previous = [], None
        values_by_step = []
        for t, address in enumerate(addresses):
            values = torch.as_tensor(
                np.stack([r.values[t] for r in records]), dtype=torch.float32, device=device
            )
            inputs.append(self.step_input(observation, address, previous))
            values_by_step.append(values)
            previous = (address, values)
        hidden, _ = self.lstm(torch.stack(inputs))
        total = observation.new_zeros(len(records))
        for t, address in enumerate(addresses):
            parameters = [
                torch.as_tensor(
                    np.stack([r.parameters[t][i] for r in records]),
                    dtype=torch.float32,
                    device=device,
                )
                for i in range(len(records[0].parameters[t]))
            ]
            proposal = self.head(address)(hidden[t], parameters)
            total = total + proposal.log_prob(values_by_step[t]).reshape(len(records), -1).sum(1)
        return -total.mean()

    def _flat_observations(self, record: TraceRecord) -> Tensor:
        parts = [
            torch.as_tensor(np.asarray(record.observations[name], dtype=np.float32).reshape(-1))
            for name in self.observation_shapes
        ]
        return torch.cat(parts)

    def describe(self) -> dict[str, object]:
        """What is saved besides the weights: enough to rebuild the network."""
        return {
            "simulator": self.simulator,
            "observation_shapes": self.observation_shapes,
            "config": asdict(self.config),
            "addresses": {a: asdict(info) for a, info in self.addresses.items()},
        }


def _key(index: int) -> str:
    return f"a{index}"  # ModuleDict keys cannot hold the dots and slashes of addresses


def _or(value: Tensor | None, default: Tensor) -> Tensor:
    return default if value is None else value.to(torch.float32)


def _squash(values: Tensor, batch: int) -> Tensor:
    """A value as an embedding input ``[B, width]``: sign(v) log(1 + |v|), scale-free."""
    flat = values.to(torch.float32).reshape(batch, -1)
    return torch.sign(flat) * torch.log1p(flat.abs())


def _embedding(config: NetworkConfig, shapes: Mapping[str, tuple[int, ...]]) -> nn.Module:
    width = sum(math.prod(shape) for shape in shapes.values())
    size = config.observation_size
    if config.embedding == "cnn3d":
        if len(shapes) != 1 or len(next(iter(shapes.values()))) != 3:
            raise ValueError(
                f"embedding='cnn3d' needs one 3-d observation, got shapes {dict(shapes)}"
            )
        # no ReLU after the last layer: with one, most units died in training on tau
        # images (70% never active, the embedding constant across events: measured)
        return nn.Sequential(
            nn.Conv3d(1, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool3d(2),
            nn.Conv3d(8, 16, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool3d(3),
            nn.Flatten(),
            nn.Linear(16 * 27, size),
        )
    return nn.Sequential(nn.Linear(width, size), nn.ReLU(), nn.Linear(size, size), nn.ReLU())
