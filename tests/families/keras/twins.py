"""Small Keras models and their PyTorch twins, for the Keras pack's tests (``file.py:factory`` targets).

Every twin takes the Keras model's input as it is (channels last, batch first) and returns
what the Keras model returns, so one seeded array goes through both.  Frameworks are
imported inside the functions; callers import torch before TensorFlow.
"""

from __future__ import annotations

import os
from typing import Any

EPS = 1e-3  # Keras' BatchNormalization / LayerNormalization default; the twins must use it


def _keras() -> Any:
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras

    return keras


def keras_convnet(width: int = 3) -> Any:
    """Conv2D -> BatchNorm -> DepthwiseConv2D -> (sequence) LSTM -> LayerNorm -> Dense -> Dense."""
    return _convnet(_keras(), width)


def _convnet(keras: Any, width: int) -> Any:
    """The convnet in ``keras`` (Keras 3, or tf-keras for the legacy formats)."""
    layers = keras.layers
    inp = keras.Input((6, 6, 2))
    x = layers.Conv2D(4, 3, padding="same")(inp)
    x = layers.BatchNormalization()(x)
    x = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(x)
    x = layers.Reshape((36, 8))(x)
    x = layers.LSTM(5)(x)
    x = layers.LayerNormalization()(x)
    x = layers.Dense(6, activation="relu")(x)
    out = layers.Dense(width)(x)
    return keras.Model(inp, out)


def keras_seq() -> Any:
    """Embedding -> GRU -> Conv1D -> Dense: a GRU, an Embedding and a 1-D convolution."""
    keras = _keras()
    layers = keras.layers
    inp = keras.Input((7,), dtype="int32")
    x = layers.Embedding(11, 4)(inp)
    x = layers.GRU(5, return_sequences=True)(x)
    x = layers.Conv1D(3, 2)(x)
    x = layers.Flatten()(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out)


def _torch_modules() -> tuple[Any, Any]:
    import torch

    return torch, torch.nn


def twin(width: int = 3) -> Any:
    """The PyTorch twin of :func:`keras_convnet`."""
    torch, nn = _torch_modules()

    class ConvNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4, eps=EPS)
            self.dw = nn.Conv2d(4, 8, 3, padding=1, groups=4)
            self.rnn = nn.LSTM(8, 5, batch_first=True)
            self.norm = nn.LayerNorm(5, eps=EPS)
            self.fc1 = nn.Linear(5, 6)
            self.fc2 = nn.Linear(6, width)

        def forward(self, x: Any) -> Any:
            x = self.dw(self.bn(self.conv(x.permute(0, 3, 1, 2))))
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], 36, 8)
            _, (h, _) = self.rnn(x)
            return self.fc2(torch.relu(self.fc1(self.norm(h[-1]))))

    return ConvNet().eval()


def twin_wrong() -> Any:
    """The twin with a last layer one unit too wide."""
    return twin(width=4)


def twin_unsqueezed() -> Any:
    """The twin with the right weights whose output carries an extra axis: the outputs cannot be compared."""
    model = twin()
    forward = model.forward
    model.forward = lambda x: forward(x).unsqueeze(1)
    return model


def twin_seq() -> Any:
    """The PyTorch twin of :func:`keras_seq`."""
    torch, nn = _torch_modules()

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(11, 4)
            self.gru = nn.GRU(4, 5, batch_first=True)
            self.conv = nn.Conv1d(5, 3, 2)
            self.head = nn.Linear(18, 2)

        def forward(self, ids: Any) -> Any:
            x, _ = self.gru(self.emb(ids.long()))
            x = self.conv(x.transpose(1, 2)).transpose(1, 2)
            return self.head(x.reshape(x.shape[0], -1))

    return Seq().eval()


def tf_keras_convnet() -> Any:
    """:func:`keras_convnet` built with tf-keras (Keras 2), for the legacy ``.h5`` formats."""
    import tf_keras

    return _convnet(tf_keras, 3)


def keras_stacked() -> Any:
    """Two stacked LSTMs, then two stacked GRUs (return_sequences=True between them) -> Dense."""
    keras = _keras()
    layers = keras.layers
    inp = keras.Input((6, 3))
    x = layers.LSTM(5, return_sequences=True)(inp)
    x = layers.LSTM(5, return_sequences=True)(x)
    x = layers.GRU(4, return_sequences=True)(x)
    x = layers.GRU(4)(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out)


def twin_stacked(separate: bool = False) -> Any:
    """The PyTorch twin of :func:`keras_stacked`: ``nn.LSTM(num_layers=2)`` and ``nn.GRU(num_layers=2)``, or
    (``separate``) four one-layer modules."""
    torch, nn = _torch_modules()

    class Stacked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if separate:
                self.lstm = nn.Sequential(_Seq(nn.LSTM(3, 5, batch_first=True)), _Seq(nn.LSTM(5, 5, batch_first=True)))
                self.gru = nn.Sequential(_Seq(nn.GRU(5, 4, batch_first=True)), _Seq(nn.GRU(4, 4, batch_first=True)))
            else:
                self.lstm = _Seq(nn.LSTM(3, 5, num_layers=2, batch_first=True))
                self.gru = _Seq(nn.GRU(5, 4, num_layers=2, batch_first=True))
            self.head = nn.Linear(4, 2)

        def forward(self, x: Any) -> Any:
            return self.head(self.gru(self.lstm(x))[:, -1])

    return Stacked().eval()


def twin_stacked_separate() -> Any:
    """:func:`twin_stacked` with one module per Keras layer."""
    return twin_stacked(separate=True)


def _Seq(rnn: Any) -> Any:  # noqa: N802 - reads as a layer
    """An RNN module that returns its output sequence only (so that it stacks in ``nn.Sequential``)."""
    _, nn = _torch_modules()

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = rnn

        def forward(self, x: Any) -> Any:
            return self.rnn(x)[0]

    return Seq()


def keras_birnn(k: Any = None) -> Any:
    """Two stacked Bidirectional LSTMs, a Bidirectional GRU (last state) -> Dense; ``k``: the Keras module."""
    keras = k or _keras()
    layers = keras.layers
    inp = keras.Input((6, 3))
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(inp)
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True))(x)
    x = layers.Bidirectional(layers.GRU(3, reset_after=True))(x)
    out = layers.Dense(2)(x)
    return keras.Model(inp, out)


def tf_keras_birnn() -> Any:
    """:func:`keras_birnn` built with tf-keras (Keras 2), for the legacy formats."""
    import tf_keras

    return keras_birnn(tf_keras)


def twin_birnn() -> Any:
    """The PyTorch twin of :func:`keras_birnn`: one ``nn.LSTM(num_layers=2, bidirectional=True)``."""
    torch, nn = _torch_modules()

    class BiRNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            self.gru = nn.GRU(8, 3, bidirectional=True, batch_first=True)
            self.head = nn.Linear(6, 2)

        def forward(self, x: Any) -> Any:
            _, h = self.gru(self.lstm(x)[0])  # h: (directions, batch, units); Keras concatenates forward, backward
            return self.head(torch.cat([h[0], h[1]], dim=-1))

    return BiRNN().eval()


def twin_birnn_one_way() -> Any:
    """A twin whose LSTM is not bidirectional: the Keras Bidirectional layers have nothing to fill."""
    _, nn = _torch_modules()

    class OneWay(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(3, 4, num_layers=3, batch_first=True)
            self.gru = nn.GRU(8, 3, bidirectional=True, batch_first=True)
            self.head = nn.Linear(6, 2)

    return OneWay().eval()


MHA_SEQ, MHA_E = 5, 8  # sequence length, embedding size


def keras_attention() -> Any:
    """Self-attention (query = key = value) -> LayerNorm -> Dense."""
    keras = _keras()
    layers = keras.layers
    inp = keras.Input((MHA_SEQ, MHA_E))
    x = layers.MultiHeadAttention(num_heads=2, key_dim=MHA_E // 2)(inp, inp)
    x = layers.LayerNormalization()(x)
    out = layers.Dense(3)(x)
    return keras.Model(inp, out)


def twin_attention(num_heads: int = 2) -> Any:
    """The PyTorch twin of :func:`keras_attention`: ``nn.MultiheadAttention(E, 2, batch_first=True)``."""
    _, nn = _torch_modules()

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(MHA_E, num_heads, batch_first=True)
            self.norm = nn.LayerNorm(MHA_E, eps=EPS)
            self.head = nn.Linear(MHA_E, 3)

        def forward(self, x: Any) -> Any:
            return self.head(self.norm(self.attn(x, x, x, need_weights=False)[0]))

    return Attention().eval()


def twin_attention_four_heads() -> Any:
    """:func:`twin_attention` with 4 heads: same shapes, another function."""
    return twin_attention(num_heads=4)
