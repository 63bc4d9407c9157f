"""Data embedding networks for SBI: sbi's fully connected and convolutional nets."""

from __future__ import annotations

from torch import Tensor, nn

from ppx.inference.sbi.layout import Layout

__all__ = ["ChannelsLast", "make_embedding"]

#: ``"auto"`` gives an MLP embedding to flat data with more dimensions than this.
MLP_ABOVE = 50


class ChannelsLast(nn.Module):
    """Flat ``(H, W, C)`` images to flat ``(C, H, W)`` ones (for sbi's CNN embedding).

    Arguments:
        shape: the image shape ``(H, W, C)``, channels (e.g. calorimeter layers) last.
    """

    def __init__(self, shape: tuple[int, int, int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(-1, *self.shape).permute(0, 3, 1, 2).reshape(len(x), -1)


def make_embedding(embedding: str | nn.Module | None, layout: Layout) -> nn.Module | None:
    """The embedding net for ``layout``'s data.

    Arguments:
        embedding: ``"mlp"`` (sbi's ``FCEmbedding``), ``"cnn"`` (sbi's
            ``CNNEmbedding`` on the single data block, 1-d, 2-d, or 3-d with
            channels last), a module (used as is), ``None``, or ``"auto"`` (CNN
            for a single 2-d or 3-d data block, MLP for more than
            :data:`MLP_ABOVE` dimensions, else none).
        layout: the data blocks.
    """
    if embedding is None or isinstance(embedding, nn.Module):
        return embedding
    if embedding == "auto":
        images = len(layout.data) == 1 and len(layout.data[0].shape) in (2, 3)
        embedding = "cnn" if images else "mlp" if layout.x_dim > MLP_ABOVE else None
        return None if embedding is None else make_embedding(embedding, layout)
    from sbi.neural_nets.embedding_nets import CNNEmbedding, FCEmbedding

    if embedding == "mlp":
        return FCEmbedding(input_dim=layout.x_dim, output_dim=min(20, layout.x_dim))
    if embedding == "cnn":
        return _cnn(layout, CNNEmbedding)
    raise ValueError(f"unknown embedding {embedding!r}: use mlp, cnn, auto, None or an nn.Module")


def _cnn(layout: Layout, cnn: type[nn.Module]) -> nn.Module:
    if len(layout.data) != 1 or len(layout.data[0].shape) not in (1, 2, 3):
        shapes = [block.shape for block in layout.data]
        raise ValueError(f"the cnn embedding needs one 1-d, 2-d or 3-d data block, got {shapes}")
    shape = layout.data[0].shape
    if len(shape) < 3:
        return cnn(input_shape=shape)
    height, width, channels = shape
    return nn.Sequential(
        ChannelsLast((height, width, channels)),
        cnn(input_shape=(height, width), in_channels=channels),
    )
