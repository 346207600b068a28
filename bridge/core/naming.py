"""Name grammar shared by readers of name-based formats.

Where a format records what a tensor is (the TF2 object graph's slot table,
Keras' ``optimizer_weights`` group) the reader uses that.  Name-based formats
(TF1 checkpoints, state dicts) only have the name; these rules tag optimizer
slots and step counters from it, in one place.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bridge.core.model import TensorKind

# Slot variables created by TF1 optimizers, appended as the last scope component:
# google-research BERT's AdamWeightDecayOptimizer (adam_m/adam_v), tf.train.*Optimizer
# (Adam, Adam_1, Momentum, ...), LAMB and Adafactor implementations.
_TF_SLOT_SUFFIXES = frozenset(
    {
        "adam_m", "adam_v", "Adam", "Adam_1", "AdamW", "AdamW_1",
        "Momentum", "RMSProp", "RMSProp_1", "Adagrad", "Adadelta", "Adadelta_1",
        "Ftrl", "Ftrl_1", "ProximalAdagrad", "lamb_m", "lamb_v", "LAMB", "LAMB_1",
        "adafactor_vr", "adafactor_vc", "adafactor_v", "adafactor_m",
        "accumulator", "ExponentialMovingAverage",
    }
)  # fmt: skip
# Mesh TensorFlow's Adafactor (T5, mT5) appends its slots to the variable's own last component:
# ``.../SelfAttention/q_slot_vc``, ``.../wi/kernel_slot_vr``, ``shared/embedding_slot_v`` (``_slot_m`` with beta1).
_MTF_SLOT = re.compile(r"(?P<var>.+[^/])_(?P<slot>slot_(?:vc|vr|v|m))")
# Whole-name optimizer bookkeeping of tf.train.AdamOptimizer.
_TF_OPTIMIZER_NAMES = re.compile(r"(.*/)?(beta1_power|beta2_power)(_\d+)?")
_COUNTER_NAMES = frozenset({"global_step", "save_counter", "step", "iterations", "iter", "epoch"})
_METADATA_NAMES = frozenset({"_CHECKPOINTABLE_OBJECT_GRAPH"})
# Where Keras keeps compiled metrics' accumulators: tf-keras' SavedModel ``keras_api/metrics/0/total``, the ``.keras``
# archive's ``metrics/mean/vars/0``.
_METRIC_SCOPES = frozenset({"metrics", "_metrics"})
# Top-level keys of training-state pickles that hold optimizer or scheduler state.
_TORCH_OPTIMIZER_ROOTS = frozenset(
    {"optimizer", "optimizers", "optim", "optimizer_state", "optimizer_state_dict", "opt_state",
     "scheduler", "lr_scheduler", "scaler"}
)  # fmt: skip


@dataclass(frozen=True)
class NameKind:
    kind: TensorKind
    slot_of: str | None = None
    slot_name: str | None = None


MODEL = NameKind("model")


def bookkeeping_kind(scopes: Sequence[str]) -> TensorKind | None:
    """``metric`` or ``rng`` for a variable at ``scopes`` (object path or name components, the variable's own
    last) that is a Keras metric's accumulator or a seed generator's state; None for anything else."""
    if any(part in _METRIC_SCOPES for part in scopes[:-1]):
        return "metric"
    if any(part.startswith("seed_generator") for part in scopes):
        return "rng"
    return None


def classify_tf_name(name: str) -> NameKind:
    """Tag a TF1 variable name as model weight, optimizer slot, counter, seed-generator state or metadata."""
    if name in _METADATA_NAMES:
        return NameKind("metadata")
    if name.rsplit("/", 1)[-1].startswith("seed_generator"):
        return NameKind("rng")
    last = name.rsplit("/", 1)[-1]
    if name in _COUNTER_NAMES or last in ("global_step",):
        return NameKind("counter")
    if "/" in name and last in _TF_SLOT_SUFFIXES:
        return NameKind("optimizer", slot_of=name.rsplit("/", 1)[0], slot_name=last)
    if _TF_OPTIMIZER_NAMES.fullmatch(name):
        return NameKind("optimizer")
    slot = _MTF_SLOT.fullmatch(name)
    if slot is not None:
        return NameKind("optimizer", slot_of=slot["var"], slot_name=slot["slot"])
    return MODEL


def classify_torch_name(name: str) -> NameKind:
    """Tag a flattened state-dict key (``optimizer.state.0.exp_avg``) by its root."""
    root, _, rest = name.partition(".")
    if root in _TORCH_OPTIMIZER_ROOTS:
        return NameKind("optimizer", slot_name=rest.rsplit(".", 1)[-1] if rest else None)
    if name in _COUNTER_NAMES:
        return NameKind("counter")
    return MODEL


def separator(name: str) -> str:
    """The scope separator a name uses: ``/`` for TF and HDF5 paths, ``.`` for PyTorch."""
    return "/" if "/" in name else "."


def object_key_path(key: str) -> str:
    """A TF2 object-based key without its attribute: ``model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE`` ->
    ``model/dense/kernel``; any other name is returned unchanged."""
    return key.split("/.ATTRIBUTES/", 1)[0]


Shape = tuple[int, ...]


# What a tensor is, from its last name components, in every naming the two sides use: the parameter (a dense
# kernel and a LayerNorm gamma are PyTorch weights, a beta is a bias) and the projection it belongs to.
_PARAMETER_ROLES = {
    **dict.fromkeys(("weight", "kernel", "gamma", "embeddings", "embedding", "scale", "w", "g"), "weight"),
    **dict.fromkeys(("bias", "beta", "b"), "bias"),
}
_PROJECTION_ROLES = {
    **dict.fromkeys(("q", "query", "q_proj", "query_proj", "q_lin", "wq"), "query"),
    **dict.fromkeys(("k", "key", "k_proj", "key_proj", "k_lin", "wk"), "key"),
    **dict.fromkeys(("v", "value", "v_proj", "value_proj", "v_lin", "wv"), "value"),
    **dict.fromkeys(("o", "out", "output", "o_proj", "out_proj", "out_lin", "wo"), "output"),
    **dict.fromkeys(("layernorm", "layer_norm", "ln", "norm", "ln_1", "ln_2", "ln_f"), "norm"),
}
_ROLE_DEPTH = 3  # name components above the parameter that can say which projection it is (`output/dense/kernel`)


def role(name: str) -> tuple[str | None, str | None]:
    """``(projection, parameter)`` of a tensor name, each None when its components do not say: ``query`` and
    ``weight`` for both ``.../attention/self/query/kernel:0`` and ``...attn.q.weight``, ``norm`` and ``bias`` for a
    LayerNorm's ``beta``."""
    parts = [p for p in re.split(r"[/.]", object_key_path(name).split(":", 1)[0]) if p]
    parameter = _PARAMETER_ROLES.get(parts[-1]) if parts else None
    above = parts[:-1] if parameter is not None else parts
    projection = next(
        (_PROJECTION_ROLES[p.lower()] for p in reversed(above[-_ROLE_DEPTH:]) if p.lower() in _PROJECTION_ROLES),
        None,
    )
    return projection, parameter


def closest(
    name: str,
    shape: Shape,
    candidates: Sequence[tuple[str, Shape]],
    *,
    same_shape: Callable[[Shape, Shape], bool] = lambda a, b: tuple(a) == tuple(b),
) -> int | None:
    """Index of the (name, shape) candidate a did-you-mean should offer for ``name``, or None.

    Only a tensor of the same :func:`role` qualifies (a query for a query, a bias for a bias): no hint is better
    than one that points at the wrong tensor. Then a similar name (difflib ratio >= 0.6) qualifies; with the same
    shape a looser one does too (>= 0.3: a renamed layer, ``head`` -> ``classifier``, keeps its shapes). The same
    shape counts first, then the ratio.
    """
    best: tuple[bool, float, int] | None = None
    wanted = role(name)
    for index, (other, other_shape) in enumerate(candidates):
        if role(other) != wanted:
            continue
        same = same_shape(shape, other_shape)
        ratio = difflib.SequenceMatcher(None, name, other).ratio()
        if (ratio >= 0.6 or (same and ratio >= 0.3)) and (best is None or (same, ratio) > best[:2]):
            best = (same, ratio, index)
    return best[2] if best else None
