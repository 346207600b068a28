"""Reader of Keras 2 / tf-keras ``.h5`` files and transformers' ``tf_model.h5``, with h5py only.

Both ``save_weights`` and full ``model.save`` files: a ``layer_names``
attribute, one group per layer with a ``weight_names`` attribute, one dataset
per weight named after the TF variable (``dense/kernel:0``).  And transformers'
sharded layout (``save_pretrained(max_shard_size=...)``): ``tf_model.h5.index.json``
maps each variable name (``tf_bert_model/bert/.../kernel:0``) to its shard
``tf_model-0000K-of-0000N.h5``, where ``layer_names`` lists the datasets directly,
each named after its variable without the model scope (:func:`shard_dataset_name`);
records take the variable names.  The writer of transformers' layout is
:mod:`tf_side.keras2_h5_writer`.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import h5py

from bridge.core.errors import BridgeError, CorruptCheckpoint, FormatNotRecognized
from bridge.core.jsonio import load_json
from bridge.core.model import Checkpoint, TensorRecord
from bridge.core.shard_index import ShardIndex, load_index
from tf_side.h5io import (
    H5_ERRORS,
    Source,
    guarded,
    is_legacy,
    list_attr,
    must,
    open_plain,
    probe,
    record,
    str_attr,
    walk,
)
from tf_side.signatures import HF_TF_INDEX, HF_TF_WEIGHTS

__all__ = [
    "HF_TF_INDEX",
    "read_legacy_h5",
    "shard_dataset_name",
    "sniff_legacy_h5",
]


# TF variable names end in ``:<output index>``; Keras 2 stores them with it.
_OUTPUT_SUFFIX = re.compile(r":\d+$")
# transformers' TF models name their root scope tf_<snake case class>
# (TFBertModel -> tf_bert_model), so every weight of tf_model.h5 starts with it.
_HF_TF_SCOPE = re.compile(r"tf_[a-z0-9_]+")
# Step counters of Keras optimizers: Keras 2.2 `iterations`, optimizer_v2 `iter`,
# tf-keras 2.11+ optimizers `iteration` (checked on real files of each).
_COUNTER_LEAVES = frozenset({"iterations", "iteration", "iter"})


_PT_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def _in_folder(path: Path, *, only_tf: bool) -> Path:
    """A transformers ``save_pretrained`` folder stands for its ``tf_model.h5``.

    Detection (``only_tf``) claims only folders without PyTorch weights, which the PyTorch
    readers take; ``--format keras-h5`` reads the TF weights of any folder.
    """
    for name in (HF_TF_WEIGHTS, HF_TF_INDEX):  # transformers' own preference when both are there
        if path.is_dir() and (path / name).is_file():
            if not only_tf or not any((path / n).exists() for n in _PT_WEIGHTS):
                return path / name
    return path


def _is_h5_index(path: Path) -> bool:
    return path.name.endswith(".h5.index.json")


def shard_dataset_name(variable: str) -> str:
    """The dataset a variable is stored under in a shard of transformers' sharded ``tf_model.h5``: its name
    without the model scope, unless it names a ``model.`` layer or has no scope (4.57's ``save_pretrained``)."""
    if "model." in variable or "/" not in variable:
        return variable
    return variable.split("/", 1)[1]


def sniff_legacy_h5(path: Path) -> bool:
    """A Keras 2 / tf-keras / transformers ``.h5``: a ``layer_names`` attribute."""
    target = _in_folder(path, only_tf=True)
    if _is_h5_index(target):  # claimed by name: reading says what is wrong with it
        return target.is_file()
    f = probe(target)
    if f is None:
        return False
    with f:
        try:
            return is_legacy(f)
        except H5_ERRORS:
            # Damaged past the root: claim what is named like one, so that reading says what is wrong.
            return target.suffix == ".h5" and not target.name.endswith(".weights.h5")


def _is_counter(name: str, ds: h5py.Dataset) -> bool:
    return ds.shape == () and ds.dtype.kind in "iu" and name in _COUNTER_LEAVES


def _strip_output(weight_name: str) -> str:
    return _OUTPUT_SUFFIX.sub("", weight_name)


def _legacy_model_records(source: Source, group: h5py.Group, prefix: str) -> tuple[list[TensorRecord], bool]:
    """Weights of a ``save_weights`` group: ``layer_names`` -> ``weight_names``.

    Returns the records (Keras' order: layers, then each layer's weights) and
    whether layer_names lists datasets directly (transformers' sharded writer,
    which skips the per-layer groups).
    """
    records: list[TensorRecord] = []
    layer_names = list_attr(group, "layer_names") or []
    direct = False
    seen: set[str] = set()
    # tf-keras also writes `top_level_model_weights` for weights owned by the model
    # itself, outside layer_names.
    layers = list(layer_names)
    if "top_level_model_weights" in group and "top_level_model_weights" not in layers:
        layers.append("top_level_model_weights")
    for layer in layers:
        obj = group.get(layer)
        if isinstance(obj, h5py.Dataset):
            direct = True
            name = prefix + layer
            records.append(must(record(source, obj, name, path=_strip_output(layer)), source, name))
            seen.add(name)
            continue
        if not isinstance(obj, h5py.Group):
            raise CorruptCheckpoint(
                "Layer listed in layer_names has no group",
                path=source.display,
                detail=f"layer {layer!r} under '/{prefix}'",
                hint="The file was not fully written; re-save it",
            )
        for weight in list_attr(obj, "weight_names") or []:
            ds = obj.get(weight)
            name = f"{prefix}{layer}/{weight}"
            if not isinstance(ds, h5py.Dataset):
                raise CorruptCheckpoint(
                    "Weight listed in weight_names has no dataset",
                    path=source.display,
                    tensor=name,
                    hint="The file was not fully written; re-save it",
                )
            records.append(must(record(source, ds, name, path=_strip_output(weight)), source, name))
            seen.add(name)
    # Anything the index does not mention is still a stored array: list it too.
    for name, ds in walk(group, prefix):
        if name not in seen:
            records.append(must(record(source, ds, name), source, name))
    return records, direct


def _slot(opt_path: str, model_paths: dict[str, str]) -> tuple[str, str] | None:
    """``(model record name, slot)`` for an optimizer weight path, when recognisable.

    tf-keras 2.11+ optimizers name slots ``<optimizer>/<slot>/<variable>``
    (``Adam/m/dense/kernel``); optimizer_v2 (TF 2.0-2.10) named them
    ``<optimizer>/<variable>/<slot>`` (``Adam/dense/kernel/m``); Keras 3's
    legacy ``.h5`` has ``<optimizer>/<variable path with _ for />_<slot>``
    (``adam/sequential_dense_kernel_momentum``).  Keras 2.2
    (``training/Adam/Variable_3``) has nothing to match.
    """
    parts = opt_path.split("/")
    for i in range(2, len(parts)):
        target = model_paths.get("/".join(parts[i:]))
        if target is not None:
            return target, parts[i - 1]
    for i in range(1, len(parts) - 1):
        target = model_paths.get("/".join(parts[i:-1]))
        if target is not None:
            return target, parts[-1]
    leaf = parts[-1]
    flat = sorted(((p.replace("/", "_"), n) for p, n in model_paths.items()), key=lambda t: -len(t[0]))
    for key, target in flat:
        if leaf.startswith(key + "_") and len(leaf) > len(key) + 1:
            return target, leaf[len(key) + 1 :]
    return None


def _optimizer_records(source: Source, group: h5py.Group, prefix: str, model: list[TensorRecord]) -> list[TensorRecord]:
    model_paths = {r.path: r.name for r in model if r.path is not None}
    records: list[TensorRecord] = []
    seen: set[str] = set()
    for weight in list_attr(group, "weight_names") or []:
        name = prefix + weight
        ds = group.get(weight)
        if not isinstance(ds, h5py.Dataset):
            raise CorruptCheckpoint(
                "Optimizer weight listed in weight_names has no dataset",
                path=source.display,
                tensor=name,
                hint="The file was not fully written; re-save it",
            )
        path = _strip_output(weight)
        if _is_counter(path.rsplit("/", 1)[-1], ds):
            result = record(source, ds, name, kind="counter", path=path)
        else:
            slot = _slot(path, model_paths)
            result = record(
                source,
                ds,
                name,
                kind="optimizer",
                path=path,
                slot_of=slot[0] if slot else None,
                slot_name=slot[1] if slot else None,
            )
        records.append(must(result, source, name))
        seen.add(name)
    for name, ds in walk(group, prefix):
        if name not in seen:
            records.append(must(record(source, ds, name, kind="optimizer"), source, name))
    return records


def _model_config(f: h5py.File) -> dict[str, Any]:
    text = str_attr(f, "model_config")
    if not text:
        return {}
    try:  # JSON only; nothing in it is deserialised or run
        value = load_json(text, path=str(f.filename), what="model_config attribute", hint="")
    except CorruptCheckpoint:
        return {}
    return value if isinstance(value, dict) else {}


def read_legacy_h5(path: Path) -> Checkpoint:
    """A Keras 2 / tf-keras ``.h5`` (full model or weights) or transformers' ``tf_model.h5``, sharded or not."""
    path = _in_folder(path, only_tf=False)
    if _is_h5_index(path):
        return _read_sharded(load_index(path))
    source, f = open_plain(path)

    def build() -> Checkpoint:
        full = isinstance(f.get("model_weights"), h5py.Group) and list_attr(f, "layer_names") is None
        weights_group = f["model_weights"] if full else f
        if list_attr(weights_group, "layer_names") is None:
            raise FormatNotRecognized(
                "Not a Keras 2 .h5 file",
                path=path,
                detail="no `layer_names` attribute at the root or on /model_weights",
                hint="Read it with `--format hdf5` (plain HDF5) or `--format keras-weights` (Keras 3)",
            )
        prefix = "model_weights/" if full else ""
        model, direct = _legacy_model_records(source, weights_group, prefix)
        records = list(model)
        opt = f.get("optimizer_weights")
        if full and isinstance(opt, h5py.Group):
            records += _optimizer_records(source, opt, "optimizer_weights/", model)
        metadata: dict[str, Any] = {}
        for key in ("keras_version", "backend"):
            value = str_attr(f, key) or str_attr(weights_group, key)
            if value is not None:
                metadata[key] = value
        config = _model_config(f)
        if "class_name" in config:
            metadata["model_class"] = config["class_name"]
        inner = config.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str):
            metadata["model_name"] = inner["name"]
        scopes = {r.path.split("/", 1)[0] for r in model if r.path and "/" in r.path}
        if full:
            metadata["layout"] = "keras2-full"
        elif direct or (
            len(scopes) == 1
            and all(r.path and "/" in r.path for r in model)
            and _HF_TF_SCOPE.fullmatch(next(iter(scopes)))
        ):
            metadata["layout"] = "hf-tf"
            if len(scopes) == 1 and not direct:
                metadata["model_scope"] = next(iter(scopes))
        else:
            metadata["layout"] = "keras2-weights"
        return Checkpoint(
            records,
            format="keras-h5",
            path=str(path),
            files=[str(path)],
            framework="keras",
            metadata=metadata,
            closer=source.close,
        )

    return guarded(source, build)


def _read_sharded(index: ShardIndex) -> Checkpoint:
    """transformers' sharded ``tf_model.h5``: every shard's datasets, named by the index's variable names."""
    sources: list[Source] = []

    def close() -> None:
        for source in sources:
            source.close()

    records: list[TensorRecord] = []
    shard = index.path
    try:
        for shard in sorted(index.shards):  # tf_model-0000K-of-0000N.h5: K's order is the model's
            source, f = open_plain(shard)
            sources.append(source)
            records += _shard_records(index, shard.name, source, f)
    except H5_ERRORS as exc:
        close()
        if isinstance(exc, BridgeError):  # a ValueError too
            raise
        raise CorruptCheckpoint(
            "Cannot read HDF5 structure",
            path=shard,
            detail=str(exc),
            hint="The file is damaged; re-download or re-save it",
        ) from None
    except BaseException:
        close()
        raise
    scopes = {r.name.split("/", 1)[0] for r in records if "/" in r.name}
    metadata: dict[str, Any] = {"layout": "hf-tf", "shards": len(index.shards)}
    if len(scopes) == 1 and _HF_TF_SCOPE.fullmatch(next(iter(scopes))):
        metadata["model_scope"] = next(iter(scopes))
    return Checkpoint(
        records,
        format="keras-h5",
        path=str(index.path),
        files=[str(index.path), *(str(p) for p in sorted(index.shards))],
        framework="keras",
        metadata=metadata,
        closer=close,
    )


def _shard_records(index: ShardIndex, shard: str, source: Source, f: h5py.File) -> list[TensorRecord]:
    """One shard's records, checked against the index both ways; a record's value is read from its dataset."""
    variables = {shard_dataset_name(v): v for v, file in index.weight_map.items() if file == shard}
    listed = list_attr(f, "layer_names")
    if listed is None:
        raise CorruptCheckpoint(
            "Shard without a layer_names attribute",
            path=source.display,
            detail=f"listed in '{index.path.name}' but not written as transformers writes tf_model.h5 shards",
            hint="The file was not fully written; re-download or re-save it",
        )
    records: list[TensorRecord] = []
    for dataset in listed:
        variable = variables.pop(dataset, None)
        ds = f.get(dataset)
        if variable is None or not isinstance(ds, h5py.Dataset):
            raise CorruptCheckpoint(
                "Shard index and shards disagree",
                path=source.display,
                tensor=dataset,
                detail=f"the shard lists '{dataset}' but "
                + ("has no such dataset" if variable is not None else f"'{index.path.name}' puts no variable here"),
                hint="Re-save the model or restore the matching index",
            )
        found = must(record(source, ds, dataset, path=_strip_output(variable)), source, variable)
        records.append(dataclasses.replace(found, name=variable))
    if variables:
        variable = next(iter(variables.values()))
        raise CorruptCheckpoint(
            "Shard index and shards disagree",
            path=source.display,
            tensor=variable,
            detail=f"'{index.path.name}' puts it in '{shard}', whose layer_names lacks it",
            hint="Re-save the model or restore the matching index",
        )
    return records
