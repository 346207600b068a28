"""The pack interface: what a family of checkpoints declares so that generic code never names it.

The packs themselves live in ``bridge/families/<family>/pack.py``, listed by :mod:`bridge.rules`; this module is
their shape.

A rule is data: a regular expression matched in full against a TF-side name, a
``str.format`` template for the PyTorch-side name (``{1}`` is group 1, with ``/``
turned into ``.``), and a named transform (:mod:`bridge.core.transforms`) taking the
TF value to the PyTorch value.  Rules are written once, TF -> PyTorch; the other
direction enumerates the TF layout and inverts each transform.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bridge.core.transforms import Transform, parse

if TYPE_CHECKING:
    from bridge.core.verify_report import ForwardContext, VerifyReport


@dataclass(frozen=True)
class Rule:
    """``source`` (regex, fullmatch on the TF name) -> ``target`` (template) with ``transform``.

    ``needs``: a literal every name the rule matches contains (a family's model scope).  A rule with one is tried only
    on names that contain it, and its regex is compiled on that first try, not when the pack is defined: a pack of
    many families' rules (hundreds of regexes) then costs nothing for a checkpoint of another family.  A rule without
    one is compiled at once, so a bad pattern (a user's rule file) fails at definition time.
    """

    source: str
    target: str
    transform: str = "identity"
    needs: str = ""

    def __post_init__(self) -> None:
        if not self.needs:
            object.__setattr__(self, "_rx", re.compile(self.source))
        parse(self.transform)  # fail at definition time, not mid-conversion

    def apply(self, name: str) -> tuple[str, Transform] | None:
        if self.needs not in name:
            return None
        rx = self.__dict__.get("_rx")
        if rx is None:
            rx = re.compile(self.source)
            object.__setattr__(self, "_rx", rx)
        m = rx.fullmatch(name)
        if m is None:
            return None
        groups = [g.replace("/", ".") if g is not None else "" for g in m.groups()]
        return self.target.format(m.group(0), *groups), parse(self.transform)


@dataclass(frozen=True)
class Head:
    """A part of the model that some target classes lack (a task head, the pooler)."""

    label: str
    source: str  # regex (fullmatch) over TF names
    target_prefix: str  # PyTorch names of this head start with it
    # A second network trained beside the model (ELECTRA's generator), which no one target class holds: dropping it
    # is expected whatever the target, and an output without it still covers the model.
    separate: bool = False

    def claims_source(self, name: str) -> bool:
        return re.fullmatch(self.source, name) is not None


@dataclass(frozen=True)
class Optional_:
    """Target tensors that may legitimately have no source, and what happens to them."""

    target: str  # regex (fullmatch) over PyTorch names
    reason: str
    fill: str | None = None  # "zeros": convert writes zeros (a second LSTM bias, a BatchNorm step counter)


@dataclass(frozen=True)
class Copy:
    """Source tensors that are second copies of tensors mapped elsewhere (a tied layer saved twice)."""

    source: str  # regex (fullmatch) over source names
    reason: str
    owner: str | None = None  # ``re.Match.expand`` template: the name of the tensor it copies

    def owner_of(self, name: str) -> str | None:
        m = re.fullmatch(self.source, name)
        return m.expand(self.owner) if m is not None and self.owner is not None else None


@dataclass(frozen=True)
class Incompatible:
    """Source tensors the target cannot use without computing something else: never "expected"."""

    source: str  # regex (search) over source names
    reason: str


@dataclass(frozen=True)
class Buffer:
    """Source tensors that are constant buffers the target model rebuilds itself (transformers < 4.31 saved
    ``embeddings.position_ids``): expected leftovers, but only while they hold the value the target rebuilds."""

    source: str  # regex (search) over source names
    reason: str
    value: Callable[[tuple[int, ...]], np.ndarray]  # the value the target computes for a buffer of this shape


class TensorWriter(Protocol):
    """A TF-side writer (:mod:`bridge.rules.writers`, which imports the adapter only when called).

    Called with the planned tensors in the layout's order and the target's metadata; with ``--max-shard-size``,
    also ``max_shard_size`` (bytes), which a writer that shards declares as a keyword parameter.
    """

    def __call__(
        self,
        path: Path,
        tensors: Sequence[Any],
        *,
        metadata: Mapping[str, Any],
        on_tensor: Callable[[Any], None] | None = None,
    ) -> list[Path]: ...


class ForwardCheck(Protocol):
    """The forward comparison ``verify`` runs for a pack: it fills the report (:mod:`bridge.core.verify_report`).
    A pack names it through its family's ``hooks.py``, which imports the check only when called."""

    def __call__(self, report: VerifyReport, ctx: ForwardContext, /) -> None: ...


@dataclass(frozen=True)
class Output:
    """How ``convert`` writes a pack's TF-side layout (the writer: :class:`TensorWriter`)."""

    format: str  # the ``--format`` value that names these files
    writer: TensorWriter
    weights: str  # the weights file (or checkpoint prefix) the writer gets, in the output directory
    config: str | None = None  # the config file the pack's ``tf_config`` fills
    note: str | None = None  # how to load the result, for the report


@dataclass(frozen=True)
class WordEmbeddings:
    """A family's word-embedding table, for the padding-row report (``inspect --stats``, ``check``, ``convert``)."""

    names: tuple[str, ...]  # regexes (fullmatch) over tensor names, on either side, that name the table
    pad_token_id: int | None = None  # the family's pad id when config.json names none and vocab.txt has no [PAD]
    # (every tensor name, config.json) -> whether the table is also the output projection (a tied MLM decoder)
    tied: Callable[[Collection[str], dict[str, Any]], bool] | None = None

    def matches(self, name: str) -> bool:
        return any(re.fullmatch(rx, name) for rx in self.names)


@dataclass(frozen=True)
class RulePack:
    """Everything the matcher knows about one family of checkpoints.

    Attributes:
        name: ``--rules`` value and report label.
        description: one line for reports.
        rules: ordered; the first rule that matches a name wins.
        signature: a regex (search) some source name must match for the rules to claim a checkpoint at all:
            what tells the family apart from another whose names its rules also match (an encoder-decoder's
            cross-attention, beside BERT names); a pack whose signature matched wins a tie in detection.
        heads: source scopes a target class may lack, with their labels.
        optional: target tensors that may stay without a source.
        copies: source tensors that duplicate mapped ones (expected leftovers, stored once).
        incompatible: source tensors that change the model's math when dropped (gaps, exit 1).
        buffers: source tensors that are constant buffers the target rebuilds (expected leftovers when their
            values are the ones it rebuilds; read by ``check``).
        targets: PyTorch class name -> ``(config) -> {name: (shape, tied_to)}``: the layout
            of a target class computed without torch (pinned by tests against transformers).
        tf_layout: ``(config, heads) -> {tf_name: shape}``: the TF-side layout, for the
            PyTorch -> TF direction, in the order its writer stores the tensors.
        tf_class: ``(heads, config) -> class name`` of the TF-side model that layout is (the layout's
            own name when absent).
        default_target: ``(source_names) -> class name``: the class a source fits best.
        saved_class: ``(config, source names) -> class name or None``: the class a TF source was saved from, as
            its config file names it (transformers' ``architectures``), for a pack whose targets transformers
            lays out itself; tried before ``default_target``, ``--target`` overrides.
        refuses: ``(source names, config beside the source) -> reason or None``: a source of the pack's format
            that no pack maps and that the pack recognises as one it cannot convert (a family not supported yet):
            refused by name as bad input, before a structural pack could pair it by guesswork.  Asked again of the
            chosen pack with the resolved config: a source it maps whose config it cannot convert faithfully
            (a value the target class computes with otherwise) is refused the same way.
        config_from_source: ``(shapes by name) -> config dict`` when no config file is given.
        base_prefix: transformers' ``base_model_prefix`` of the family (``bert``).
        pt_config: ``(source config, class name) -> (config.json, notes)`` for the PyTorch side.
        tf_config: ``(config.json, TF class name) -> (TF-side config, notes)`` for the TF side.
        pt_copies: ``(config, class name) -> {target: target it copies, or None for zeros}``:
            tensors transformers does not tie itself, written by convert beside the matched ones.
        bind: ``(source checkpoint, target spec) -> (pack, notes)``: a structural pack (Keras) whose
            rules are generated for one source + target pair, as exact names; the rest of the
            matcher then runs as for any pack.
        detect: ``(checkpoint) -> bool``: claims a source none of the packs' rules map (structural packs).
        claims_target: ``(--target) -> bool``: a PyTorch source with this target belongs to this pack
            (a Keras model built by the user's code, a Keras weights file to fill).
        config_files: config file names beside a source that this family reads (besides ``config.json``).
        config_parsers: config files that are not JSON: a file-name pattern (``fnmatch``) -> ``(text) -> (config
            dict, notes)``.  Read beside a source when no JSON config is there (patterns without wildcards name
            the files looked for: Mesh TensorFlow's ``operative_config.gin``), and for ``--config FILE`` whose name
            matches a pattern.
        config_from_files: ``(the source's folder) -> (config keys, notes)``: facts read from other files beside
            the source (a vocabulary's special tokens); a given config's keys win, the notes say what was read.
        generation_config: ``(the config.json written) -> generation_config.json or None``: for a target that
            generates, what ``generate()`` reads (its start, end and padding tokens).
        source_heads: ``(PyTorch source shapes by name, config) -> (heads, classifier size)``: which optional parts
            of ``tf_layout`` a PyTorch source fills.
        tf_default: the layout ``--to tensorflow`` writes for a PyTorch source when no ``--target`` is given.
        tf_output: how ``convert`` writes the TF side (:class:`Output`).
        model_types: the transformers model types (``config.json``'s ``model_type``) whose checkpoints this pack
            converts: the family table (``docs/families.md``) is made from them.
        layout: the source layout, in a few words (``tf_model.h5``, ``google-research TF1 checkpoint``).
        forward_check: the forward comparison ``verify`` runs (a reference forward, :class:`ForwardCheck`), or
            None: values only.  Called as ``forward_check(report, context)``; see :func:`bridge.verify.verify`.
        word_embeddings: the family's word-embedding table (:class:`WordEmbeddings`): which tensor it is,
            the default pad id, whether it is tied; ``inspect --stats``, ``check`` and ``convert`` report its
            padding row (:mod:`bridge.core.pad_rows`).
    """

    name: str
    description: str
    rules: tuple[Rule, ...]
    signature: str | None = None
    heads: tuple[Head, ...] = ()
    optional: tuple[Optional_, ...] = ()
    copies: tuple[Copy, ...] = ()
    incompatible: tuple[Incompatible, ...] = ()
    buffers: tuple[Buffer, ...] = ()
    targets: dict[str, Callable[[dict[str, Any]], dict[str, tuple[tuple[int, ...], str | None]]]] = field(
        default_factory=dict
    )
    tf_layout: Callable[[dict[str, Any], Iterable[str]], dict[str, tuple[int, ...]]] | None = None
    tf_class: Callable[[Iterable[str], dict[str, Any]], str] | None = None
    default_target: Callable[[Iterable[str]], str | None] | None = None
    saved_class: Callable[[dict[str, Any], Iterable[str]], str | None] | None = None
    refuses: Callable[[Iterable[str], dict[str, Any]], str | None] | None = None
    config_from_source: Callable[[dict[str, tuple[int, ...]]], tuple[dict[str, Any], list[str]]] | None = None
    base_prefix: str | None = None
    pt_config: Callable[[dict[str, Any], str], tuple[dict[str, Any], list[str]]] | None = None
    tf_config: Callable[[dict[str, Any], str], tuple[dict[str, Any], list[str]]] | None = None
    pt_copies: Callable[[dict[str, Any], str], dict[str, str | None]] | None = None
    bind: Callable[[Any, Any], tuple[RulePack, list[str]]] | None = None
    detect: Callable[[Any], bool] | None = None
    claims_target: Callable[[str], bool] | None = None
    config_files: tuple[str, ...] = ()
    config_parsers: dict[str, Callable[[str], tuple[dict[str, Any], list[str]]]] = field(default_factory=dict)
    config_from_files: Callable[[Path], tuple[dict[str, Any], list[str]]] | None = None
    generation_config: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    source_heads: Callable[[dict[str, tuple[int, ...]], dict[str, Any]], tuple[list[str], int | None]] | None = None
    tf_default: bool = False
    tf_output: Output | None = None
    forward_check: ForwardCheck | None = None
    model_types: tuple[str, ...] = ()
    layout: str = ""
    word_embeddings: WordEmbeddings | None = None

    def map_name(self, name: str) -> tuple[str, Transform] | None:
        for rule in self.rules:
            hit = rule.apply(name)
            if hit is not None:
                return hit
        return None

    def copy_owner(self, name: str, names: Container[str]) -> str | None:
        """The tensor among ``names`` that ``name`` is a second copy of, if any (a tie on the TF side)."""
        for copy in self.copies:
            owner = copy.owner_of(name)
            if owner is not None and owner != name and owner in names:
                return owner
        return None

    def claims(self, names: Iterable[str]) -> float:
        """Fraction of ``names`` some rule maps: how well this pack fits a checkpoint."""
        names = list(names)
        if not names or (self.signature is not None and not any(re.search(self.signature, n) for n in names)):
            return 0.0
        return sum(self.map_name(n) is not None for n in names) / len(names)
