"""``bridge verify``: prove a conversion.

Two checks, each reported on its own:

* **values**: every matched tensor of the output equals the source tensor after
  the plan's transform, bit for bit (after the requested cast, if any), and every
  second copy a TF output stores equals the tensor it copies;
* **forward**: where the family has a model on both sides (google-research BERT and
  transformers' TF BERT layout: a TF2 reference forward and the transformers class),
  the same seeded inputs go through both and every output is compared (max abs /
  max rel difference, ``atol``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bridge.api import load
from bridge.check import check
from bridge.core import dtypes
from bridge.core.errors import BridgeError
from bridge.core.plan import Match
from bridge.core.transforms import Transform, assemble, parse
from bridge.rules import RulePack, get_pack


@dataclass(frozen=True)
class OutputDiff:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float
    ok: bool


@dataclass(frozen=True)
class ForwardCause:
    """A forward difference over ``atol`` traced to one cause: with that cause removed (the same math on both
    sides), every output agreed within ``atol``."""

    cause: str  # "activation"
    detail: str  # what differs between the two sides, in words
    matched_max_abs: float  # the largest output difference with the cause removed
    accept_atol: float  # the --atol that accepts the difference as it is
    fix: str  # what to change so that both sides compute the same


def _differences(expected: np.ndarray, got: np.ndarray) -> tuple[float, float]:
    """Max abs and max rel difference of ``got`` from ``expected``."""
    diff = np.abs(expected.astype(np.float64) - got.astype(np.float64))
    scale = np.maximum(np.abs(expected.astype(np.float64)), 1e-6)
    return (float(diff.max()) if diff.size else 0.0), (float((diff / scale).max()) if diff.size else 0.0)


@dataclass
class VerifyReport:
    source: str
    out: str
    atol: float
    values_compared: int = 0
    values_equal: int = 0
    value_failures: list[str] = field(default_factory=list)
    outputs: list[OutputDiff] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    explained: ForwardCause | None = None  # the forward fails at atol, all of it from this cause

    def compare_output(self, name: str, expected: np.ndarray, got: np.ndarray) -> None:
        """Record one forward output: max abs / max rel difference of ``got`` from ``expected``, pass at ``atol``."""
        max_abs, max_rel = _differences(expected, got)
        self.outputs.append(OutputDiff(name, tuple(got.shape), max_abs, max_rel, max_abs <= self.atol))

    def fail_output(self, name: str, shape: tuple[int, ...]) -> None:
        """Record an output that cannot be compared (the two sides' shapes differ): a failure at any ``atol``."""
        self.outputs.append(OutputDiff(name, shape, float("inf"), float("inf"), False))

    @property
    def ok(self) -> bool:
        return self.values_compared > 0 and not self.value_failures and all(o.ok for o in self.outputs)

    @property
    def exit_code(self) -> int:
        # An explained difference still fails: the two models do compute different things.
        return 0 if self.ok else 1

    @property
    def forward_status(self) -> str:
        """``none`` (no forward compared), ``pass``, ``explained`` (over atol, with values bit-exact, and all of
        it from one cause the report names), or ``fail``."""
        if not self.outputs:
            return "none"
        if all(o.ok for o in self.outputs):
            return "pass"
        return "explained" if self.explained is not None and not self.value_failures else "fail"

    def verdict(self) -> str:
        """The verdict line: PASS, FAIL, or FAIL with its cause and the way forward."""
        if self.ok:
            return "PASS" if self.outputs else "PASS (values only: no forward pass was compared)"
        why = self.explained
        if why is None or self.forward_status != "explained":
            return "FAIL"
        worst = max(o.max_abs for o in self.outputs)
        return (f"FAIL (explained): values bit-exact; the forward differs by up to {worst:.1e} (atol {self.atol:g}), "
                f"all of it from the {why.cause}: {why.detail}; with matched {why.cause}s the outputs agree to "
                f"{why.matched_max_abs:.1e}. To accept the difference: --atol {why.accept_atol:g}; to remove it, "
                f"{why.fix}")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        forward: dict[str, Any] = {"status": self.forward_status}
        if self.forward_status == "explained" and self.explained is not None:
            forward.update(asdict(self.explained))
        return {
            "ok": self.ok,
            "source": self.source,
            "out": self.out,
            "atol": self.atol,
            "values": {"compared": self.values_compared, "bit_exact": self.values_equal,
                       "failures": self.value_failures},  # fmt: skip
            "outputs": [asdict(o) for o in self.outputs],
            "forward": forward,
            "notes": self.notes,
        }


def verify(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    atol: float = 1e-5,
    seed: int = 0,
    batch: int = 2,
    seq_len: int = 16,
    forward: bool = True,
    rules: str | None = None,
    maps: tuple[str, ...] = (),
    strip_prefix: str | None = None,
    add_prefix: str | None = None,
    config: str | os.PathLike[str] | dict[str, Any] | None = None,
    source_format: str | None = None,
    target: str | None = None,
    source_model: str | None = None,
) -> VerifyReport:
    """Compare a converted checkpoint ``out`` with its ``source``.

    Args:
        source: what was converted.
        out: the conversion's output (directory or checkpoint).
        atol: largest allowed absolute difference of forward outputs.
        seed: seeds the random inputs (token ids, segment ids, a padded row).
        batch, seq_len: input shape (``seq_len`` is capped by the model's positions).
        forward: run the forward comparison where possible.
        rules, maps, strip_prefix, add_prefix, config, source_format: what the conversion was made
            with (as for :func:`bridge.check`); the plan they give is the one verified.
        target: for the ``keras`` pack, ``file.py:factory`` of the model on the output's side
            (the PyTorch twin, or the Keras model), as given to ``convert``.
        source_model: for the ``keras`` pack, ``file.py:factory`` of the model on the source's side
            when the source cannot build it (a weights-only Keras file, a PyTorch state dict).

    Returns:
        A :class:`VerifyReport`; ``ok`` when all values are bit-exact and all outputs within ``atol``.
    """
    report = VerifyReport(str(source), str(out), atol)
    if Path(out).is_dir() and (Path(out) / "model.weights.h5").is_file():
        out = Path(out) / "model.weights.h5"  # what convert writes for a Keras target
    with load(out) as out_ckpt:
        to = "pytorch" if out_ckpt.framework == "pytorch" else "tensorflow"
    plan = check(source, to=to, target=str(out), rules=rules, maps=maps, strip_prefix=strip_prefix,
                 add_prefix=add_prefix, config=config, source_format=source_format)  # fmt: skip
    report.notes.extend(n for n in plan.notes if not n.startswith("config:"))
    with load(source, format=source_format) as src, load(out) as dst:
        by_target: dict[str, list[Any]] = {}
        for m in plan.matched:
            by_target.setdefault(m.target, []).append(m)
        for target_name, matches in by_target.items():  # a target of several parts: stacked or added, as written
            report.values_compared += len(matches)
            transforms = [parse(m.transform) for m in matches]
            expected = assemble([(t, t.apply(src[m.source].numpy())) for t, m in zip(transforms, matches, strict=True)])
            got = dst[target_name].numpy()
            if got.dtype != expected.dtype and dtypes.dtype_name(got.dtype) != dtypes.STRING:
                expected = expected.astype(got.dtype)
            if expected.shape == got.shape and _same_bytes(expected, got):
                report.values_equal += len(matches)
            else:
                report.value_failures.append(f"{' + '.join(m.source for m in matches)} -> {target_name}: values differ")
        if to == "tensorflow":  # a TF layout's second copies (hf-tf's masked-LM embeddings) equal their owners
            for tie in plan.tied:
                report.values_compared += 1
                if _same_bytes(dst[tie.name].numpy(), dst[tie.tied_to].numpy()):
                    report.values_equal += 1
                else:
                    report.value_failures.append(f"{tie.name}: differs from `{tie.tied_to}`, which it copies")
        if not forward:
            return report
        if (src.framework == "pytorch") == (dst.framework == "pytorch"):
            report.notes.append("no forward check: both sides are the same framework, so equal values compute the same")
            return report
        if plan.pack in ("google-bert", "hf-tf") and to == "tensorflow" and (strip_prefix or add_prefix):
            report.notes.append("no forward check: transformers loads the PyTorch source by its own names, which "
                                "need --strip-prefix/--add-prefix to line up; values compared only")  # fmt: skip
        elif plan.pack in ("google-bert", "hf-tf"):
            # A TF source renamed by --map/--rules: the plan says which of its tensors the reference reads.
            renamed = {m.target: m for m in plan.matched} if to == "pytorch" else {}
            _bert_forward(report, src if src.framework != "pytorch" else dst, get_pack(plan.pack),
                          Path(out if to == "pytorch" else source), plan.target.config or {}, seed, batch,
                          seq_len, renamed)  # fmt: skip
        elif plan.pack == "keras":
            from bridge.verify_keras import keras_forward_check

            keras_forward_check(report, src, dst, to, target, source_model, seed, batch)
        elif plan.pack == "bertseq2seq" and to == "pytorch":
            from bridge.verify_seq2seq import seq2seq_forward_check

            seq2seq_forward_check(report, src, Path(out), plan.target.config or {}, seed, batch, seq_len)
        else:
            report.notes.append(f"no forward check for the {plan.pack} rules: values compared only")
    return report


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype == object or b.dtype == object:
        return bool(np.array_equal(a, b))
    return a.dtype == b.dtype and np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


# transformers' hidden_act -> the gelu form it computes, and back.
_GELU_FORMS = {"gelu": "erf", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
_GELU_NAMES = {"erf": "gelu", "tanh": "gelu_new"}


def _bert_forward(
    report: VerifyReport, tf_ckpt: Any, pack: RulePack, pt_folder: Path, config: dict[str, Any], seed: int,
    batch: int, seq_len: int, by_target: dict[str, Match],
) -> None:  # fmt: skip
    """transformers' PyTorch model against the TF reference forward on the TF side's weights.

    The reference reads google-research names; another layout's weights reach it through
    the PyTorch names both packs map to.  google-research's code has only the tanh gelu;
    transformers' TF models compute the config's ``hidden_act``, and so does the reference for them.
    """
    try:
        from pt_side.forward import load_transformers_model, transformers_outputs

        model, pt_config = load_transformers_model(pt_folder if pt_folder.is_dir() else pt_folder.parent)
        from tf_side.ref_bert import bert_forward
    except BridgeError as e:
        report.notes.append(f"forward check skipped: {e}")
        return
    except ImportError as e:
        report.notes.append(f"forward check skipped: {e}")
        return
    cfg = {**config, **pt_config}  # the PyTorch model's own config decides what it computes
    seq = min(seq_len, cfg["max_position_embeddings"])
    rng = np.random.default_rng(seed)
    inputs = {
        "input_ids": rng.integers(0, cfg["vocab_size"], (batch, seq)).astype(np.int64),
        "token_type_ids": rng.integers(0, cfg.get("type_vocab_size", 1), (batch, seq)).astype(np.int64),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
    }
    inputs["attention_mask"][-1, seq // 2 :] = 0  # one padded row exercises the mask
    pt = transformers_outputs(model, inputs)
    heads = tuple(h for h, key in (("pooler", "pooled_output"), ("mlm", "mlm_logits"), ("nsp", "nsp_logits"))
                  if key in pt)  # fmt: skip
    act = cfg.get("hidden_act")
    gelu = "erf" if pack.name != "google-bert" and act == "gelu" else "tanh"
    if gelu == "tanh" and act not in ("gelu_new", "gelu_pytorch_tanh"):
        report.notes.append(f"PyTorch hidden_act is {act!r}; the TF reference uses the tanh gelu")
    weights = _google_names(tf_ckpt, pack, cfg, heads, by_target)

    def run(form: str) -> dict[str, np.ndarray]:
        return bert_forward(weights, cfg, inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"],
                            heads=heads, gelu=form)  # fmt: skip

    try:
        tf = run(gelu)
    except _NoSource as e:
        report.notes.append(f"forward check skipped: the TF reference forward needs `{e.args[0]}`, which no "
                            "tensor of the TF side fills (nor any --map/--rules rule)")  # fmt: skip
        return
    for name, value in pt.items():
        if name in tf:
            report.compare_output(name, tf[name], value)
    pt_form = _GELU_FORMS.get(act or "")
    if report.ok or report.value_failures or pt_form is None or pt_form == gelu:
        return
    # Values are bit-exact and the two sides' activations differ: run the reference with the PyTorch side's
    # activation; if that agrees, the activation is the whole difference.
    matched = run(pt_form)
    worst = max(_differences(matched[name], value)[0] for name, value in pt.items() if name in matched)
    if worst > report.atol:
        report.notes.append(f"with the TF reference computing the PyTorch side's `{act}` ({pt_form}) too, outputs "
                            f"still differ by {worst:.1e} (atol {report.atol:g}): the activation does not explain it "
                            "all")  # fmt: skip
        return
    tf_side = "google-research's tanh form" if pack.name == "google-bert" else f"the {gelu} form"
    config_path = (pt_folder if pt_folder.is_dir() else pt_folder.parent) / "config.json"
    report.explained = ForwardCause(
        cause="activation",
        detail=f"transformers' `{act}` ({pt_form}) on the PyTorch side vs {tf_side} on the TF side",
        matched_max_abs=worst,
        accept_atol=_round_up(max(o.max_abs for o in report.outputs)),
        fix=f"make the PyTorch side compute the TF side's math: set \"hidden_act\": \"{_GELU_NAMES[gelu]}\" in "
        f"{config_path}",
    )


def _round_up(x: float) -> float:
    """``x`` rounded up to one significant digit (1.1e-3 -> 2e-3): an ``--atol`` that accepts it."""
    if x <= 0:
        return 0.0
    exponent = math.floor(math.log10(x))
    lead = math.ceil(x / 10**exponent)
    while lead > 1 and float(f"{lead - 1}e{exponent}") >= x:  # x / 10**exponent may round up by an ulp
        lead -= 1
    while float(f"{lead}e{exponent}") < x:  # or down
        lead += 1
    return float(f"{lead}e{exponent}")


class _NoSource(KeyError):
    """A google-research name the reference forward needs and the TF side does not provide."""


def _google_names(
    tf_ckpt: Any, pack: RulePack, config: dict[str, Any], heads: tuple[str, ...], by_target: dict[str, Match]
) -> Callable[[str], np.ndarray]:
    """google-research name -> value, from a checkpoint in ``pack``'s TF layout.

    Both packs' rules meet at the PyTorch names: a value is brought to its PyTorch layout by
    ``pack``'s transform, then to google-research's by the inverse of that pack's.  A name neither
    the checkpoint nor the pack provides is looked up in ``by_target`` (the plan's matches by
    PyTorch name: tensors a user rule renamed).  Such a tensor is read as it is stored when its
    shape is google-research's, so the forward still checks the rule's transform; else through it.
    """
    google = get_pack("google-bert")
    by_pt: dict[str, tuple[str, Transform]] = {}
    if pack.name != google.name:
        for r in tf_ckpt.values():
            hit = pack.map_name(r.name)
            if hit is not None and r.kind == "model":
                by_pt.setdefault(hit[0], (r.name, hit[1]))
    shapes = google.tf_layout(config, heads)  # type: ignore[misc]
    base = f"{google.base_prefix}."

    def planned(pt_name: str) -> Match | None:
        for name in (pt_name, pt_name.removeprefix(base), base + pt_name):
            if name in by_target:
                return by_target[name]
        return None

    def read(name: str) -> np.ndarray:
        value: np.ndarray = tf_ckpt[name].numpy()
        return value

    def weights(name: str) -> np.ndarray:
        if pack.name == google.name and name in tf_ckpt:
            return read(name)
        pt_name, to_pt = google.map_name(name)  # type: ignore[misc]
        if pt_name in by_pt:
            source, from_tf = by_pt[pt_name]
            return to_pt.inverse(shapes[name]).apply(from_tf.apply(read(source)))
        match = planned(pt_name)
        if match is None:
            raise _NoSource(name)
        value = read(match.source)
        if pack.name == google.name and value.shape == shapes[name]:
            return value
        return to_pt.inverse(shapes[name]).apply(parse(match.transform).apply(value))

    return weights
