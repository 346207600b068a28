"""The registry of checkpoint formats.

Each format's sniff and reader are small functions that import their adapter when called, so nothing heavier
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

if TYPE_CHECKING:
    from bridge.core.model import Checkpoint


@dataclass(frozen=True)
class Format:
    """A registered checkpoint format.

    Attributes:
        name: the ``--format`` value.
        description: one line for ``bridge formats`` and error messages.
        framework: ``tensorflow``, ``keras`` or ``pytorch``.
        sniff: ``(Path) -> bool``; cheap, reads at most a header.
        reader: ``(Path) -> Checkpoint``; reads the index only.
    """

    name: str
    description: str
    framework: str
    sniff: Callable[[Path], bool]
    reader: Callable[[Path], Checkpoint]


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
        if fmt.sniff(path):
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


# Each adapter function, imported when first called.


def _sniff_tf_checkpoint(path: Path) -> bool:
    from tf_side.bundle.locate import sniff_checkpoint as sniff

    return sniff(path)


def _read_tf_checkpoint(path: Path) -> Checkpoint:
    from tf_side.bundle.checkpoint import read_checkpoint as read

    return read(path)


def _sniff_saved_model(path: Path) -> bool:
    from tf_side.bundle.locate import sniff_saved_model as sniff

    return sniff(path)


def _read_saved_model(path: Path) -> Checkpoint:
    from tf_side.bundle.checkpoint import read_saved_model as read

    return read(path)


def _sniff_keras_hub_preset(path: Path) -> bool:
    from bridge.core.keras_hub_preset import sniff_keras_hub_preset as sniff  # JSON only: no h5py to sniff

    return sniff(path)


def _read_keras_hub_preset(path: Path) -> Checkpoint:
    from tf_side.keras_hub_preset import read_keras_hub_preset as read

    return read(path)


def _sniff_keras_archive(path: Path) -> bool:
    from tf_side.signatures import sniff_keras_archive as sniff

    return sniff(path)


def _read_keras_archive(path: Path) -> Checkpoint:
    from tf_side.keras_archive import read_keras_archive as read

    return read(path)


def _sniff_keras3_weights(path: Path) -> bool:
    from tf_side.h5_sniff import sniff_keras3_weights as sniff

    return sniff(path)


def _read_keras3_weights(path: Path) -> Checkpoint:
    from tf_side.keras3_weights import read_keras3_weights as read

    return read(path)


def _sniff_legacy_h5(path: Path) -> bool:
    from tf_side.h5_sniff import sniff_legacy_h5 as sniff

    return sniff(path)


def _read_legacy_h5(path: Path) -> Checkpoint:
    from tf_side.keras2_h5 import read_legacy_h5 as read

    return read(path)


def _sniff_safetensors(path: Path) -> bool:
    from pt_side.safetensors_io import sniff

    return sniff(path)


def _read_safetensors(path: Path) -> Checkpoint:
    from pt_side.safetensors_io import read

    return read(path)


def _sniff_torch(path: Path) -> bool:
    from pt_side.torch_pickle import sniff

    return sniff(path)


def _read_torch(path: Path) -> Checkpoint:
    from pt_side.torch_pickle import read

    return read(path)


def _sniff_dcp(path: Path) -> bool:
    from pt_side.dcp_reader import sniff

    return sniff(path)


def _read_dcp(path: Path) -> Checkpoint:
    from pt_side.dcp_reader import read

    return read(path)


def _sniff_companion_folder(path: Path) -> bool:
    from bridge.companion import sniff

    return sniff(path)


def _read_companion_folder(path: Path) -> Checkpoint:
    from bridge.companion import read

    return read(path, lambda part: detect(part).reader(part))


def _sniff_plain_hdf5(path: Path) -> bool:
    from tf_side.signatures import sniff_plain_hdf5 as sniff

    return sniff(path)


def _read_plain_hdf5(path: Path) -> Checkpoint:
    from tf_side.hdf5_plain import read_plain_hdf5 as read

    return read(path)


for _fmt in (
    Format(
        "tf-checkpoint",
        "TensorFlow checkpoint (TF1 name-based or TF2 object-based tensor bundle)",
        "tensorflow",
        _sniff_tf_checkpoint,
        _read_tf_checkpoint,
    ),
    Format(
        "saved-model",
        "TensorFlow SavedModel or TF1 Hub module directory (its variables/ bundle)",
        "tensorflow",
        _sniff_saved_model,
        _read_saved_model,
    ),
    Format(
        "keras-hub-preset",
        "KerasHub preset directory (config.json naming a keras_hub Backbone, model.weights.h5, task.weights.h5)",
        "keras",
        _sniff_keras_hub_preset,
        _read_keras_hub_preset,
    ),
    Format(
        "keras",
        "Keras 3 .keras archive (config.json + model.weights.h5)",
        "keras",
        _sniff_keras_archive,
        _read_keras_archive,
    ),
    Format(
        "keras-weights",
        "Keras 3 .weights.h5 (layers/<name>/vars/<i>)",
        "keras",
        _sniff_keras3_weights,
        _read_keras3_weights,
    ),
    Format(
        "keras-h5",
        "Keras 2 / tf-keras .h5 (full model or weights), transformers tf_model.h5",
        "keras",
        _sniff_legacy_h5,
        _read_legacy_h5,
    ),
    Format(
        "safetensors",
        "safetensors file, or a sharded set with model.safetensors.index.json",
        "pytorch",
        _sniff_safetensors,
        _read_safetensors,
    ),
    Format(
        "torch",
        "torch.save file (.bin/.pt/.pth, zip or legacy), or a sharded .bin set",
        "pytorch",
        _sniff_torch,
        _read_torch,
    ),
    Format(
        "dcp",
        "torch.distributed.checkpoint directory (.metadata + __<rank>_<k>.distcp), shards assembled on read",
        "pytorch",
        _sniff_dcp,
        _read_dcp,
    ),
    Format(
        "companion-folder",
        "a folder of two PyTorch networks one TF checkpoint stores together, in the subfolders a layout names "
        "(`bridge layouts`), read as one source",
        "pytorch",
        _sniff_companion_folder,
        _read_companion_folder,
    ),
    Format(
        "hdf5",
        "any other HDF5 file: every dataset by path",
        "hdf5",
        _sniff_plain_hdf5,
        _read_plain_hdf5,
    ),
):
    register(_fmt)
