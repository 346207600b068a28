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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bridge.core.transforms import Transform, parse

if TYPE_CHECKING:
    from bridge.core.model import Checkpoint
    from bridge.core.plan import TargetSpec
    from bridge.core.verify_report import ForwardContext, VerifyReport


@dataclass(frozen=True)
class Rule:
    """``source`` (regex, fullmatch on the TF name) -> ``target`` (template) with ``transform``.

    ``needs``: a literal every name the rule matches contains (a family's model scope); a rule with one is tried only
    on names that contain it.  Every regex is compiled on its rule's first try, not when the pack is defined: the
    packs' thousands of rules then cost nothing for a checkpoint they do not match.  A user's rule file is checked
    at load time instead (:meth:`compiled`), so a bad pattern is refused before any work starts.
    """

    source: str
    target: str
    transform: str = "identity"
    needs: str = ""

    def __post_init__(self) -> None:
        parse(self.transform)  # fail at definition time, not mid-conversion

    def compiled(self) -> re.Pattern[str]:
        """The source regex, compiled once (``re.error`` for a bad pattern)."""
        rx = self.__dict__.get("_rx")
        if rx is None:
            rx = re.compile(self.source)
            object.__setattr__(self, "_rx", rx)
        return rx

    def apply(self, name: str) -> tuple[str, Transform] | None:
        if self.needs not in name:
            return None
        m = self.compiled().fullmatch(name)
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
class Fill:
    """How convert computes a target tensor that no source tensor fills: from its shape (a constant buffer the
    target layout saves and the source model rebuilds, Swin's relative position index), or from another target
    tensor after a transform (a tie the target layout saves as a transposed copy)."""

    value: Callable[[tuple[int, ...]], np.ndarray] | None = None  # the tensor of this shape
    owner: str | None = None  # ``re.Match.expand`` template over the Optional_'s target: the tensor it copies
    transform: str = "identity"  # from the owner's value to this tensor's

    def describe(self) -> str:
        """For the plan's report (which stays JSON)."""
        return "computed" if self.owner is None else f"copy of `{self.owner}` ({self.transform})"


@dataclass(frozen=True)
class Optional_:
    """Target tensors that may legitimately have no source, and what happens to them."""

    target: str  # regex (fullmatch) over PyTorch names
    reason: str
    # "zeros": convert writes zeros (a second LSTM bias, a BatchNorm step counter); a Fill: convert computes it
    fill: str | Fill | None = None


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
    render: Callable[[dict[str, Any]], str] | None = None  # the config file's text, where it is not JSON (gin)


@dataclass(frozen=True)
class WordEmbeddings:
    """A family's word-embedding table, for the padding-row report (``inspect --stats``, ``check``, ``convert``)."""

    names: tuple[str, ...]  # regexes (fullmatch) over tensor names, on either side, that name the table
    pad_token_id: int | None = None  # the family's pad id when config.json names none and vocab.txt has no [PAD]
    # (every tensor name, config.json) -> whether the table is also the output projection (a tied MLM decoder)
    tied: Callable[[Collection[str], dict[str, Any]], bool] | None = None

    def matches(self, name: str) -> bool:
        return any(re.fullmatch(rx, name) for rx in self.names)


# The hooks' types.  A config is the JSON dict of transformers' config.json (or a family's own config file read into
# one); a layout maps a tensor name to its shape.
Config = dict[str, Any]
Shapes = dict[str, tuple[int, ...]]
Notes = list[str]
ClassLayout = dict[str, tuple[tuple[int, ...], str | None]]  # name -> (shape, the name it is tied to, or None)


class TargetLayout(Protocol):
    """A target class's layout computed without torch (pinned by tests against transformers)."""

    def __call__(self, config: Config, /) -> ClassLayout: ...


class TfLayout(Protocol):
    """The TF-side layout for the PyTorch -> TF direction, in the order its writer stores the tensors."""

    def __call__(self, config: Config, heads: Iterable[str], /) -> Shapes: ...


class SourceLayout(Protocol):
    """A TF-side layout computed from the PyTorch source itself (its names and shapes) and its config."""

    def __call__(self, shapes: Shapes, config: Config, /) -> Shapes: ...


class TfClass(Protocol):
    """The class name of the TF-side model a :class:`TfLayout` is."""

    def __call__(self, heads: Iterable[str], config: Config, /) -> str: ...


class SourceHeads(Protocol):
    """Which optional parts of the TF layout a PyTorch source fills: ``(heads, classifier size)``."""

    def __call__(self, shapes: Shapes, config: Config, /) -> tuple[list[str], int | None]: ...


class Refuses(Protocol):
    """Why a source (its names, the config beside it) is refused by name as bad input, or None."""

    def __call__(self, names: Iterable[str], config: Config, /) -> str | None: ...


class SavedClass(Protocol):
    """The class a source was saved from, as its config names it, or None."""

    def __call__(self, config: Config, names: Iterable[str], /) -> str | None: ...


class ConfigMapping(Protocol):
    """A config for one side: ``(source config, class name) -> (config, notes)``."""

    def __call__(self, config: Config, class_name: str, /) -> tuple[Config, Notes]: ...


class PtCopies(Protocol):
    """Tensors transformers does not tie itself: ``{target: the target it copies, or None for zeros}``."""

    def __call__(self, config: Config, class_name: str, /) -> dict[str, str | None]: ...


class Bind(Protocol):
    """A structural pack's exact-name rules for one source + target pair, and notes."""

    def __call__(self, ckpt: Checkpoint, spec: TargetSpec, /) -> tuple[RulePack, Notes]: ...


ConfigParser = Callable[[str], tuple[Config, Notes]]  # a config file's text -> (config, notes)


@dataclass(frozen=True)
class Detection:
    """Which sources and targets the pack claims (step 1)."""

    signature: str | None = None  # a regex (search) some source name must match for the rules to claim it at all
    refuses: Refuses | None = None  # a source of the pack's format it recognises and cannot convert
    detect: Callable[[Checkpoint], bool] | None = None  # claims a source no pack's rules map (structural packs)
    claims_target: Callable[[str], bool] | None = None  # a PyTorch source with this ``--target`` is the pack's


@dataclass(frozen=True)
class ConfigHooks:
    """How the pack reads and writes configs (step 2, and the configs ``convert`` writes)."""

    files: tuple[str, ...] = ()  # config file names beside a source that the family reads (besides config.json)
    parsers: Mapping[str, ConfigParser] = field(default_factory=dict)  # file-name pattern (fnmatch) -> parser
    from_source: Callable[[Shapes], tuple[Config, Notes]] | None = None  # no config file: what the shapes say
    from_files: Callable[[Path], tuple[Config, Notes]] | None = None  # facts from other files in the source's folder
    pytorch: ConfigMapping | None = None  # the PyTorch side's config.json
    tensorflow: ConfigMapping | None = None  # the TF side's config
    generation: Callable[[Config], Config | None] | None = None  # generation_config.json, for a target that generates
    side_files: Callable[[Path], dict[str, bytes]] | None = None  # source folder -> files written beside (tokenizer)


@dataclass(frozen=True)
class Companion:
    """A second network that the pack's TF layout stores beside the source's in one checkpoint, given as a PyTorch
    folder holding two transformers ``save_pretrained`` outputs: ``main/`` (the source's network) and ``folder/``
    (the companion).  Both are read as one source, the companion's names under ``prefix``; its config is
    ``config(main's config.json, the companion's)``."""

    main: str  # the subfolder of the network the source is
    folder: str  # the subfolder of the companion network
    prefix: str  # the companion's names in the one source: ``prefix + its own name``
    config: Callable[[Config, Config], Config]
    label: str = ""  # the pair in words, for ``bridge formats`` and reports


@dataclass(frozen=True)
class PyTorchSide:
    """The PyTorch classes the pack converts to (step 3, ``--to pytorch``)."""

    targets: Mapping[str, TargetLayout] = field(default_factory=dict)  # class name -> its layout
    default_target: Callable[[Iterable[str]], str | None] | None = None  # source names -> the class it fits best
    saved_class: SavedClass | None = None  # tried before ``default_target``; ``--target`` overrides both
    base_prefix: str | None = None  # transformers' ``base_model_prefix`` of the family (``bert``)
    copies: PtCopies | None = None  # tensors convert writes beside the matched ones
    companion: Companion | None = None  # a source folder of two networks the TF layout stores in one checkpoint
    # (transformers config) -> whether the class's tensors are named as its save_pretrained writes them
    # (transformers 5 splits some tensors it joins in memory, a mixture of experts' banks, back into the names other
    # readers know), not as the model holds them
    saved_names: Callable[[Config], bool] | None = None


@dataclass(frozen=True)
class TensorFlowSide:
    """The TF-side layout the pack writes (step 3, ``--to tensorflow``, and step 5)."""

    layout: TfLayout | None = None
    class_name: TfClass | None = None  # the layout's own pack name when absent
    source_heads: SourceHeads | None = None
    # the layout ``--to tensorflow`` writes for a PyTorch source of the families it writes when no ``--target`` is
    # given (a family's own original layout); a source of no known family gets the first pack's that says so
    default: bool = False
    output: Output | None = None  # how ``convert`` writes it
    source_layout: SourceLayout | None = None  # the layout computed from the source's names (tried before ``layout``)
    model_types: tuple[str, ...] | None = None  # the families the layout is written for (None: ``docs.model_types``)
    metadata: Callable[[Config, str], Config] | None = None  # (config, TF class) -> the writer's other needs

    @property
    def writes(self) -> bool:
        """Whether the pack writes a TF layout (PyTorch -> TF)."""
        return self.layout is not None or self.source_layout is not None

    def answers(self, pack_name: str, target: str | None) -> bool:
        """Whether ``--target`` names this layout: the pack's name or the format it writes (``hf-tf``)."""
        return target in (pack_name, self.output.format if self.output is not None else None)


@dataclass(frozen=True)
class Matching:
    """What the matcher needs beyond the rules' names (step 4)."""

    rules: tuple[Rule, ...] = ()  # ordered: the first rule that matches a name wins
    heads: tuple[Head, ...] = ()  # source scopes a target class may lack
    optional: tuple[Optional_, ...] = ()  # target tensors that may stay without a source
    copies: tuple[Copy, ...] = ()  # source tensors that duplicate mapped ones (expected leftovers)
    incompatible: tuple[Incompatible, ...] = ()  # source tensors whose loss changes the model's math (gaps)
    buffers: tuple[Buffer, ...] = ()  # constant buffers the target rebuilds (expected while their values agree)
    bind: Bind | None = None  # a structural pack: rules generated for one source + target pair


@dataclass(frozen=True)
class Docs:
    """What the family table (``docs/families.md``) says of the pack."""

    model_types: tuple[str, ...] = ()  # config.json's ``model_type`` values the pack converts
    layout: str = ""  # the source layout, in a few words (``tf_model.h5``)


@dataclass(frozen=True)
class RulePack:
    """Everything the matcher knows about one family of checkpoints, in typed parts; a pack declares only the
    parts it has.

    The commands ask a pack in this order, and nowhere else is it written:

    1. **detection** (:class:`Detection`): a PyTorch source whose ``--target`` a pack's ``claims_target`` claims is
       that pack's, else it is placed by its TF side (``tf.layout``, ``tf.default``); a TF source goes to the pack
       whose rules map most of its names (``signature`` gates it and breaks a tie); when none maps any, ``refuses``
       names a family a pack recognises but cannot convert (bad input, exit 2), else ``detect`` claims it by
       structure.  ``refuses`` is asked again of the chosen pack with the config of step 2.
    2. **config** (:class:`ConfigHooks`): a given ``--config``, else the files beside the source (``config.json``,
       ``files``, ``parsers``), else ``from_source`` (the shapes); ``from_files`` adds facts from other files.
    3. **target** (:class:`PyTorchSide`, :class:`TensorFlowSide`): ``--target``, else ``pt.saved_class``, else
       ``pt.default_target``; its layout from ``pt.targets`` (or transformers), or for ``--to tensorflow``
       ``tf.layout`` with the ``tf.source_heads`` a PyTorch source fills.
    4. **matching** (:class:`Matching`): ``bind`` first (a structural pack's rules for this pair), then the rules
       (a rule file's first), and the explanations of what stays: heads, optional, copies, incompatible, buffers.
    5. **writing** (``convert``): ``config.pytorch`` / ``config.tensorflow`` and ``config.generation`` write the
       configs, ``pt.copies`` the tensors transformers does not tie, ``tf.output`` the TF files.
    6. **forward check** (``verify``): ``forward_check(report, context)`` (:class:`ForwardCheck`), or None: values
       only.

    ``word_embeddings`` (:class:`WordEmbeddings`) is the table whose padding row ``inspect --stats``, ``check`` and
    ``convert`` report (:mod:`bridge.core.pad_rows`); ``docs`` (:class:`Docs`) feeds the family table.
    """

    name: str  # ``--rules`` value and report label
    description: str  # one line for reports
    matching: Matching = field(default_factory=Matching)
    detection: Detection = field(default_factory=Detection)
    config: ConfigHooks = field(default_factory=ConfigHooks)
    pt: PyTorchSide = field(default_factory=PyTorchSide)
    tf: TensorFlowSide = field(default_factory=TensorFlowSide)
    forward_check: ForwardCheck | None = None
    word_embeddings: WordEmbeddings | None = None
    docs: Docs = field(default_factory=Docs)

    def with_rules(self, rules: tuple[Rule, ...]) -> RulePack:
        """This pack with other rules (a rule file's ``PACK`` built on a family's)."""
        return replace(self, matching=replace(self.matching, rules=rules))

    def map_name(self, name: str) -> tuple[str, Transform] | None:
        for rule in self.matching.rules:
            hit = rule.apply(name)
            if hit is not None:
                return hit
        return None

    def copy_owner(self, name: str, names: Container[str]) -> str | None:
        """The tensor among ``names`` that ``name`` is a second copy of, if any (a tie on the TF side)."""
        for copy in self.matching.copies:
            owner = copy.owner_of(name)
            if owner is not None and owner != name and owner in names:
                return owner
        return None

    def fill_of(self, name: str) -> Fill | None:
        """How convert computes the target ``name`` no source fills (its owner's name expanded), if the pack says."""
        for opt in self.matching.optional:
            m = re.fullmatch(opt.target, name)
            if m is not None and isinstance(opt.fill, Fill):
                return opt.fill if opt.fill.owner is None else replace(opt.fill, owner=m.expand(opt.fill.owner))
        return None

    def claims(self, names: Iterable[str]) -> float:
        """Fraction of ``names`` some rule maps: how well this pack fits a checkpoint."""
        names = list(names)
        signature = self.detection.signature
        if not names or (signature is not None and not any(re.search(signature, n) for n in names)):
            return 0.0
        return sum(self.map_name(n) is not None for n in names) / len(names)
