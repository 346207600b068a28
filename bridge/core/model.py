"""The neutral named-array model: what every reader produces and every writer consumes.

A :class:`Checkpoint` is an ordered, read-only mapping ``name -> TensorRecord``.
A record holds metadata only (shape, dtype, byte size, where the bytes live);
its value is read on demand by :meth:`TensorRecord.numpy`, usually from a
memory map, so opening a multi-gigabyte checkpoint reads only its index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bridge.core import dtypes
from bridge.core.errors import TensorNotFound
from bridge.core.invoked import command_name

TensorKind = Literal["model", "optimizer", "counter", "metric", "rng", "metadata"]
KINDS: tuple[TensorKind, ...] = ("model", "optimizer", "counter", "metric", "rng", "metadata")
# What each kind is, for people: every kind but ``model`` is training bookkeeping, never a weight.
KIND_MEANINGS: dict[TensorKind, str] = {
    "model": "model weights",
    "optimizer": "optimizer state (slots, learning rate): not model weights",
    "counter": "step counters (iterations, save_counter, global_step): not model weights",
    "metric": "running totals of compiled Keras metrics (total, count): not model weights",
    "rng": "random-number generator state (a Keras seed_generator): not model weights",
    "metadata": "checkpoint bookkeeping (the object graph): not a tensor of the model",
}

Loader = Callable[[], np.ndarray]
# (start, stop) -> rows [start, stop) of the leading axis, read alone (see TensorRecord.row_reader).
RowReader = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class TensorRecord:
    """One named tensor of a checkpoint, with its value loaded lazily.

    Attributes:
        name: the key exactly as the owning framework lists it
            (``tf.train.list_variables``, the h5 dataset path, the state-dict key).
        shape: the full shape (for partitioned TF variables, of the assembled tensor).
        dtype: a name from :mod:`bridge.core.dtypes` (``float32``, ``bfloat16``, ``string``...).
        nbytes: bytes of the stored value.
        location: where the bytes live, for people (``file @ offset``, an h5 path).
        kind: ``model`` (a weight), ``optimizer`` (a slot), ``counter`` (step,
            save counter), ``metric`` (a Keras metric's total/count), ``rng`` (a seed
            generator's state) or ``metadata`` (object graph, bookkeeping strings); see :data:`KIND_MEANINGS`.
        path: a readable path where the stored key is not one (TF2 object graphs).
        slot_of: for optimizer slots, the name of the variable they belong to.
        slot_name: for optimizer slots, the slot (``m``, ``v``, ``adam_m``, ``exp_avg``).
        row_reader: where the format can read part of the leading axis alone, ``(start, stop)`` -> those rows,
            without the checksum (a format's checksum covers the whole tensor): for notes drawn from a sample of a
            large table, never for values written out.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    location: str
    loader: Loader = field(repr=False, compare=False)
    kind: TensorKind = "model"
    path: str | None = None
    slot_of: str | None = None
    slot_name: str | None = None
    row_reader: RowReader | None = field(default=None, repr=False, compare=False)

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    def numpy(self) -> np.ndarray:
        """Read (and, where the format has one, checksum) the value."""
        return self.loader()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "nbytes": self.nbytes,
            "kind": self.kind,
        }
        for key in ("path", "slot_of", "slot_name"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def array_record(name: str, value: np.ndarray, *, location: str = "memory", kind: TensorKind = "model") -> TensorRecord:
    """A record over an in-memory array (tests, transforms, writers' inputs)."""
    dtype = dtypes.dtype_name(value.dtype)
    nbytes = value.nbytes if dtype != dtypes.STRING else sum(len(v) for v in value.ravel())
    return TensorRecord(
        name=name,
        shape=tuple(int(d) for d in value.shape),
        dtype=dtype,
        nbytes=int(nbytes),
        location=location,
        loader=lambda: value,
        kind=kind,
    )


class Checkpoint(Mapping[str, TensorRecord]):
    """An opened checkpoint: an ordered mapping of names to :class:`TensorRecord`.

    Args:
        records: the tensors, in the order the format lists them.
        format: the registry name of the format that read it (``tf-checkpoint``...).
        path: what the user pointed at.
        files: every file the checkpoint consists of.
        framework: ``tensorflow``, ``keras`` or ``pytorch``.
        metadata: format facts worth showing (checkpoint style, shard count, config...).
        tied: groups of names that share one storage (for TF2 object-based checkpoints, the
            object paths of one variable that several model objects hold, stored once).
        closer: releases file handles and memory maps.
        warnings: what a reader could open but not fully (a data shard missing beside its index): shown by
            ``inspect`` and ``check``; reading an affected value raises.

    Example:
        >>> import bridge
        >>> with bridge.load("bert_model.ckpt") as ckpt:           # doctest: +SKIP
        ...     ckpt["bert/embeddings/word_embeddings"].shape
        (30522, 768)
    """

    def __init__(
        self,
        records: Iterable[TensorRecord],
        *,
        format: str,
        path: str,
        files: Iterable[str] = (),
        framework: str,
        metadata: Mapping[str, Any] | None = None,
        tied: Iterable[tuple[str, ...]] = (),
        closer: Callable[[], None] | None = None,
        warnings: Iterable[str] = (),
    ) -> None:
        self._records: dict[str, TensorRecord] = {}
        for record in records:
            if record.name in self._records:
                raise ValueError(f"duplicate tensor name {record.name!r}")
            self._records[record.name] = record
        self.format = format
        self.path = path
        self.files = list(files)
        self.framework = framework
        self.metadata: dict[str, Any] = dict(metadata or {})
        self.tied = [tuple(group) for group in tied]
        self._closer = closer
        self.warnings = list(warnings)

    def __getitem__(self, name: str) -> TensorRecord:
        try:
            return self._records[name]
        except KeyError:
            close = _closest(name, self._records)
            raise TensorNotFound(
                "No such tensor",
                path=self.path,
                tensor=name,
                hint=f"Did you mean `{close}`?" if close else f"Run `{command_name()} inspect` to list the names",
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __len__(self) -> int:
        return len(self._records)

    def __repr__(self) -> str:
        return f"<Checkpoint {self.format} {self.path!r}: {len(self)} tensors>"

    def of_kind(self, kind: TensorKind) -> list[TensorRecord]:
        return [r for r in self._records.values() if r.kind == kind]

    def close(self) -> None:
        if self._closer is not None:
            closer, self._closer = self._closer, None
            closer()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _closest(name: str, names: Iterable[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return found[0] if found else None
