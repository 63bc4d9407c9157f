"""Controlled draws where they matter: the tau decay channel as a PPX latent.

:class:`TauChannelHandler` is a ``pythia8mc.DecayHandler`` that Pythia calls for every
tau (``setDecayPtr(handler, [15, -15])``, before ``init()``). For each tau it draws::

    tau-/channel ~ Categorical(branching ratios of Pythia's tau- decay table)
    tau+/channel ~ the same, for a tau+ (charge-conjugate channels)

switches every other tau channel off (``DecayChannel.onMode(0)``) and returns
``False``, so that Pythia decays the tau itself, in the chosen channel, with its own
matrix elements and kinematics. The value is an index into
:attr:`TauChannelHandler.channels` (Pythia's channels with a positive branching
ratio, in Pythia's order). Conditioning or proposing ``tau-/channel`` forces the
channel; ``control=False`` makes it a recorded prior draw.

Requirements and limits (measured with pythia8mc 8.317.2):

- ``TauDecays:mode = 0``. With the default ``mode = 1`` (spin correlations) Pythia
  decays a tau pair in one go and calls the handler once per pair, so the second tau
  could not be controlled; :func:`tau_channel_handler` refuses it.
- The decay kinematics stay Pythia's flats: ``DecayHandler.decay`` receives its
  product lists as Python copies (pybind11 converts ``std::vector&``), so a Python
  handler cannot return products of its own; returning ``True`` leaves the tau undecayed.
"""

from __future__ import annotations

from collections.abc import Sequence

import pythia8mc
import torch

import ppx

__all__ = ["TAU", "TauChannelHandler", "tau_channel_handler", "tau_channels"]

TAU = 15


def tau_channels(pythia: pythia8mc.Pythia) -> list[tuple[int, float, tuple[int, ...]]]:
    """Pythia's open tau- channels: ``(index in the decay table, ratio, products)``.

    Channels switched off by the settings (``15:onMode``) or with a zero branching
    ratio are left out.
    """
    entry = pythia.particleData.particleDataEntryPtr(TAU)
    out = []
    for index in range(entry.sizeChannels()):
        channel = entry.channel(index)
        if channel.bRatio() > 0 and channel.onMode() != 0:
            products = tuple(channel.product(k) for k in range(channel.multiplicity()))
            out.append((index, channel.bRatio(), products))
    return out


class TauChannelHandler(pythia8mc.DecayHandler):
    """Draws each tau's decay channel with ``ppx.sample`` and makes Pythia use it.

    Keep a reference for as long as the Pythia lives (as for the random engine).

    Arguments:
        pythia: the configured, not yet initialised, Pythia.
        control: let the engine choose the channel (else a recorded prior draw).

    Attributes:
        channels: ``[(table index, branching ratio, products of the tau-)]``.
        distribution: the ``Categorical`` over :attr:`channels`.
        chosen: ``[(tau pdg id, channel index)]`` of the current event.
    """

    def __init__(self, pythia: pythia8mc.Pythia, control: bool = True) -> None:
        super().__init__()
        self.control = control
        self._entry = pythia.particleData.particleDataEntryPtr(TAU)
        self.channels = tau_channels(pythia)
        ratios = torch.tensor([ratio for _, ratio, _ in self.channels], dtype=torch.float64)
        self.distribution = torch.distributions.Categorical(probs=ratios / ratios.sum())
        self.chosen: list[tuple[int, int]] = []

    def names(self, pythia: pythia8mc.Pythia) -> list[str]:
        """Readable channel names, e.g. ``"nu_tau pi-"``, in the order of the index."""
        data = pythia.particleData
        return [" ".join(data.name(i) for i in products) for _, _, products in self.channels]

    def decay(
        self,
        ids: Sequence[int],
        masses: Sequence[float],
        momenta: Sequence[pythia8mc.Vec4],
        index: int,
        event: pythia8mc.Event,
    ) -> bool:
        """Draw this tau's channel, force it, and let Pythia decay the tau (``False``)."""
        sign = "-" if ids[0] > 0 else "+"
        k = int(ppx.sample(self.distribution, name=f"tau{sign}/channel", control=self.control))
        self.chosen.append((int(ids[0]), k))
        forced = self.channels[k][0]
        for i in range(self._entry.sizeChannels()):
            self._entry.channel(i).onMode(1 if i == forced else 0)
        return False


def tau_channel_handler(pythia: pythia8mc.Pythia, control: bool = True) -> TauChannelHandler:
    """A :class:`TauChannelHandler` for this configured Pythia.

    Raises:
        ValueError: ``TauDecays:mode`` is not 0 (pairs would be decayed in one call).
    """
    if pythia.settings.mode("TauDecays:mode") != 0:
        raise ValueError(
            "the controlled tau channel needs 'TauDecays:mode = 0': with spin "
            "correlations Pythia decays a tau pair in one call"
        )
    return TauChannelHandler(pythia, control)
