"""The registry of checkpoint formats.

Each format names its adapter functions as import strings, so nothing heavier
than the registry is imported until a path is actually opened, and opening a
TF checkpoint never imports PyTorch (nor TensorFlow: the bundle reader is native).
Detection tries each format's ``sniff`` in registration order: specific formats
first, the plain-HDF5 fallback last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.core.errors import CheckpointNotFound, FormatNotRecognized, UsageError
from bridge.core.registry import resolve

if TYPE_CHECKING:
    from bridge.core.model import Checkpoint


@dataclass(frozen=True)
class Format:
    """A registered checkpoint format.

    Attributes:
        name: the ``--format`` value.
        description: one line for ``bridge formats`` and error messages.
        framework: ``tensorflow``, ``keras`` or ``pytorch``.
        sniff: ``"module:function"``, ``(Path) -> bool``; cheap, reads at most a header.
        reader: ``"module:function"``, ``(Path) -> Checkpoint``; reads the index only.
    """

    name: str
    description: str
    framework: str
    sniff: str
    reader: str

    def load_sniff(self) -> Callable[[Path], bool]:
        return resolve(self.sniff)  # type: ignore[no-any-return]

    def load_reader(self) -> Callable[[Path], Checkpoint]:
        return resolve(self.reader)  # type: ignore[no-any-return]


_REGISTRY: dict[str, Format] = {}


def register(fmt: Format) -> None:
    if fmt.name in _REGISTRY:
        raise ValueError(f"format {fmt.name!r} is registered twice")
    _REGISTRY[fmt.name] = fmt


def formats() -> list[Format]:
    return list(_REGISTRY.values())


def get(name: str) -> Format:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(
            f"Unknown format '{name}'",
            hint=f"Known formats: {', '.join(_REGISTRY)}",
        ) from None


def detect(path: Path) -> Format:
    """The first registered format whose sniff claims ``path``."""
    for fmt in _REGISTRY.values():
        if fmt.load_sniff()(path):
            return fmt
    if not path.exists() and not any(path.parent.glob(path.name + ".*")):
        raise CheckpointNotFound(
            "Checkpoint not found",
            path=path,
            detail="no such file, directory or checkpoint prefix",
            hint="Check the path; for a TF checkpoint give the prefix (model.ckpt-1000), "
            "its .index file or its directory",
        )
    raise FormatNotRecognized(
        "Not a checkpoint this tool can read",
        path=path,
        detail="no known format matched its name or first bytes",
        hint=f"Known formats: {', '.join(_REGISTRY)}; if it is one of them, pass --format NAME",
    )


for _fmt in (
    Format(
        "tf-checkpoint",
        "TensorFlow checkpoint (TF1 name-based or TF2 object-based tensor bundle)",
        "tensorflow",
        "tf_side.bundle.locate:sniff_checkpoint",
        "tf_side.bundle.checkpoint:read_checkpoint",
    ),
    Format(
        "saved-model",
        "TensorFlow SavedModel or TF1 Hub module directory (its variables/ bundle)",
        "tensorflow",
        "tf_side.bundle.locate:sniff_saved_model",
        "tf_side.bundle.checkpoint:read_saved_model",
    ),
    Format(
        "keras",
        "Keras 3 .keras archive (config.json + model.weights.h5)",
        "keras",
        "tf_side.signatures:sniff_keras_archive",
        "tf_side.keras_archive:read_keras_archive",
    ),
    Format(
        "keras-weights",
        "Keras 3 .weights.h5 (layers/<name>/vars/<i>)",
        "keras",
        "tf_side.h5_sniff:sniff_keras3_weights",
        "tf_side.keras3_weights:read_keras3_weights",
    ),
    Format(
        "keras-h5",
        "Keras 2 / tf-keras .h5 (full model or weights), transformers tf_model.h5",
        "keras",
        "tf_side.h5_sniff:sniff_legacy_h5",
        "tf_side.keras2_h5:read_legacy_h5",
    ),
    Format(
        "safetensors",
        "safetensors file, or a sharded set with model.safetensors.index.json",
        "pytorch",
        "pt_side.safetensors_io:sniff",
        "pt_side.safetensors_io:read",
    ),
    Format(
        "torch",
        "torch.save file (.bin/.pt/.pth, zip or legacy), or a sharded .bin set",
        "pytorch",
        "pt_side.torch_pickle:sniff",
        "pt_side.torch_pickle:read",
    ),
    Format(
        "dcp",
        "torch.distributed.checkpoint directory (.metadata + __<rank>_<k>.distcp), shards assembled on read",
        "pytorch",
        "pt_side.dcp_reader:sniff",
        "pt_side.dcp_reader:read",
    ),
    Format(
        "hdf5",
        "any other HDF5 file: every dataset by path",
        "hdf5",
        "tf_side.signatures:sniff_plain_hdf5",
        "tf_side.hdf5_plain:read_plain_hdf5",
    ),
):
    register(_fmt)
