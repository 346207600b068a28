"""transformers PyTorch -> ``tf_model.h5`` for the generic hf-tf families: the TF names computed, never listed.

The forward rules (:mod:`bridge.families.hf_tf.generic_pack`) say how ``<top>/<scope>/<layer path>/<variable>:0`` is
read as a PyTorch name.  Here they are run backwards: for each PyTorch tensor of the source, the TF names its
name can come from (list indices ``.N`` as ``_._N``, the parameter as one of the leaves ``kernel``, ``gamma``,
``beta``, ``embeddings``, ``weight``, ``bias``..., the top layer the head or main layer it starts with, the
family's unscoped names) are tried in order of likelihood, and the first one the forward rules map back to exactly
that PyTorch name is kept: the forward rules are the oracle, so a name is never guessed into the file.  Where the
rules accept several leaves for one parameter (an embedding table saved as ``weight`` or ``embeddings``: both read
as ``weight``), the layer's kind decides, and the family's data (:attr:`Family.tf_leaves`) overrides it.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

from bridge.core.transforms import Transform
from bridge.families.hf_tf.data import Family, pt_levels, snake
from bridge.families.hf_tf.data.back import MAIN_ONLY

MapName = Callable[[str], "tuple[str, Transform] | None"]

# The leaves a PyTorch parameter can be saved as, most likely first (the layer kind then reorders them)
_LEAVES = {
    "weight": ("kernel", "gamma", "embeddings", "weight"),
    "bias": ("bias", "beta"),
    "running_mean": ("moving_mean",),
    "running_var": ("moving_variance",),
}
# PyTorch state that no TF variable holds: dropped, and said
NOT_STORED = r"(?:.*\.)?num_batches_tracked"
# transformers' TF word-embedding tables are weights the layer adds itself (``weight``); Keras' Embedding layers
# (positions, token types) store ``embeddings``
_WORD_TABLES = r"(?:word_embeddings|token_embedding|tokens_embed|embed_tokens|embeddings)"
_TABLES = r"(?:.*_)?(?:embeddings?|embed|embed_[a-z]+|wte|wpe|shared)"  # a layer that is a lookup table


def _leaf_order(module: str, param: str, shape: tuple[int, ...], family: Family, name: str) -> list[str]:
    for rx, leaf in family.tf_leaves:
        if re.fullmatch(rx, name):
            return [leaf]
    leaves = list(_LEAVES.get(param, ()))
    if param == "weight":
        if len(shape) == 1:
            leaves = ["gamma", "weight"]
        elif len(shape) == 2 and re.fullmatch(_TABLES, module):
            leaves = ["weight", "embeddings"] if re.fullmatch(_WORD_TABLES, module) else ["embeddings", "weight"]
        else:
            leaves = ["kernel", "weight"]
    return [*leaves, param]


def _tf_path(components: list[str]) -> str:
    """``layer.0.attention`` -> ``layer_._0/attention``: transformers' TF list index."""
    out = ""
    for c in components:
        out += f"_._{c}" if c.isdigit() and out else (f"/{c}" if out else c)
    return out


def _literal(rx: str) -> str | None:
    """The one name a regex without groups or classes matches (an unscoped rule's), else None."""
    text = rx.replace(r"\.", ".").replace(r"\_", "_")
    return None if re.search(r"[\\()\[\]*+?|{}^$]", text) else text


def _alternatives(rx: str) -> list[str]:
    """The names a regex of literal text and groups of literal alternatives (``(a|b)``, ``(?:a|b)``) matches,
    Keras' repeated-scope suffix ``(?:_\d+)?`` left out (a written file has none)."""
    rx = rx.replace(r"(?:_\d+)?", "")
    m = re.search(r"\((?:\?:)?([^()?]*)\)", rx)
    if m is None:
        return [lit] if (lit := _literal(rx)) is not None else []
    return [n for alt in m.group(1).split("|") for n in _alternatives(rx[: m.start()] + alt + rx[m.end() :])]


def _indexed(name: str, placed: Iterable[str]) -> list[str]:
    """``name`` with a list index (``_._N``) replaced by each index the placed names have at that path (the layers
    an unscoped variable is saved again in)."""
    out = []
    for m in re.finditer(r"_\._(\d+)", name):
        at = re.compile(re.escape(name[: m.start()]) + r"_\._(\d+)/")
        indices = {hit.group(1) for n in placed if (hit := at.match(n)) is not None}
        out += [name[: m.start(1)] + i + name[m.end(1) :] for i in sorted(indices - {m.group(1)}, key=int)]
    return out


def _parse_rename(rx: str) -> tuple[list[str | tuple[str, ...] | int], list[str], str, str] | None:
    """A rename's regex as parts: literal text, ``(?:a|b)`` alternatives (tuples of literal text), capture groups
    (their numbers in the parts, their patterns listed), and its anchors; None where it is more than that."""
    parts: list[str | tuple[str, ...] | int] = []
    groups: list[str] = []
    start = "^" if rx.startswith("^") else ""
    end = "$" if rx.endswith("$") and not rx.endswith("\\$") else ""
    body = rx[len(start) : len(rx) - len(end)]
    i = 0
    while i < len(body):
        if body.startswith("(?:", i) or body[i] == "(":
            close = body.find(")", i)
            inner = body[i + 3 : close] if body.startswith("(?:", i) else body[i + 1 : close]
            if close < 0 or "(" in inner:
                return None
            if body.startswith("(?:", i):
                alternatives = tuple(_literal(a) for a in inner.split("|"))
                if any(a is None for a in alternatives):
                    return None
                parts.append(tuple(a for a in alternatives if a is not None))
            else:
                groups.append(inner)
                parts.append(len(groups))
            i = close + 1
            continue
        lit = _literal(body[i : i + 2]) if body[i] == "\\" else None if body[i] == "." else _literal(body[i])
        if lit is None:
            return None
        parts.append(lit)
        i += 2 if body[i] == "\\" else 1
    return parts, groups, start, end


def _inverse(rx: str, replacement: str) -> tuple[str, list[str]] | None:
    """``re.sub(rx, replacement, x)`` undone: a regex over its result and the templates of the texts it replaced
    (several where ``rx`` has alternatives: the forward rules tell which one was there); None where it cannot be
    derived (a group the replacement drops, a regex beyond literal text, alternatives and groups)."""
    parsed = _parse_rename(rx)
    if parsed is None:
        return None
    parts, groups, start, end = parsed
    pieces = re.split(r"\\(\d)", replacement)  # literal text, group number, literal text...
    pattern, order = start, []
    for k, piece in enumerate(pieces):
        if k % 2:
            order.append(int(piece))
            pattern += f"({groups[int(piece) - 1]})"
        else:
            pattern += re.escape(piece)
    if sorted(set(order)) != list(range(1, len(groups) + 1)):
        return None
    templates = [""]
    for part in parts:
        if isinstance(part, tuple):
            templates = [t + alt for t in templates for alt in part]
        elif isinstance(part, int):
            templates = [t + f"\\g<{order.index(part) + 1}>" for t in templates]
        else:
            templates = [t + part for t in templates]
    return pattern + end, templates


def unrenamed(name: str, family: Family, cls: str) -> list[str]:
    """The transformers 4.x names that the family's renames (of this class) turn into ``name``, the most renames
    undone first (the renames exist because 4.x had those names; the name itself may still map, as a name no rename
    touches), the renames undone from the last; the forward rules then tell which map back."""
    out = [name]
    for cls_rx, rx, replacement in reversed(family.renames):
        inverse = _inverse(rx, replacement) if re.fullmatch(cls_rx, cls) else None
        if inverse is None:
            continue
        pattern, templates = inverse
        out = [re.sub(pattern, t, n) for n in out if re.search(pattern, n) for t in templates] + out
    return list(dict.fromkeys(out))


def _tops(family: Family) -> list[tuple[str, str]]:
    """(TF top layer, its PyTorch prefix), longest prefix first."""

    tops = [(h, pt_levels(h) + ".") for h in (*family.heads, family.main)]
    return sorted(tops, key=lambda t: -len(t[1]))


def _full(name: str, family: Family) -> str:
    """The name under its top layer's prefix: a base model's names lack the main layer's."""
    return name if any(name.startswith(prefix) for _, prefix in _tops(family)) else f"{family.main}.{name}"


def candidates(name: str, shape: tuple[int, ...], family: Family, scope: str, bias_leaf: str | None) -> list[str]:
    """TF names ``name`` may come from, most likely first (not yet checked against the forward rules)."""
    # the unscoped names (outside the model scope, or under any class's scope): of this class's scope only
    others = re.compile(rf"(?:^|/){family.scope_rx}/")
    out = [
        n for rx, _, _ in family.unscoped for n in _alternatives(rx) if f"/{scope}/" in f"/{n}" or not others.search(n)
    ]
    # torch's weight norm (parametrizations `original0`, `original1`) is Keras' `weight_g`, `weight_v`
    name = re.sub(r"\.parametrizations\.(\w+)\.original([01])$", lambda m: f".{m[1]}_{'gv'[int(m[2])]}", name)
    full = _full(name, family)
    # of top layers with one PyTorch prefix (MobileBERT's `predictions___cls`, `seq_relationship___cls`: `cls.`), the
    # one that names the layer below it
    tops = [(t, p) for t, p in _tops(family) if full.startswith(p)]
    tops.sort(key=lambda tp: (-len(tp[1]), not full[len(tp[1]) :].startswith(tp[0].partition("___")[0] + ".")))
    top, prefix = tops[0] if tops else (family.main, family.main + ".")
    rest = full[len(prefix) :].split(".")
    module = rest[-2] if len(rest) > 1 else top
    path = "/".join(x for x in (top, _tf_path(rest[:-1])) if x)
    for rx, replacement in family.tf_paths:
        path = re.sub(rx, replacement, path)
    leaves = _leaf_order(module, rest[-1], shape, family, name)
    if rest[-1] == "bias" and bias_leaf is not None and not any(re.fullmatch(rx, name) for rx, _ in family.tf_leaves):
        leaves = [bias_leaf, *leaves]
    for leaf in dict.fromkeys(leaves):
        if (
            "{module}" in leaf
        ):  # a variable the parent layer adds itself (`rel_embeddings.weight`, `point_embed_._0.weight`)
            parent, _, layer = path.rpartition("/")
            out.append(f"{top}/{scope}/{parent}/{leaf.format(module=layer)}:0")
        else:
            out.append(f"{top}/{scope}/{path}/{leaf}:0")
    return out


def tf_shape(transform: Transform, pt_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The TF shape a forward ``transform`` turns into ``pt_shape`` (None where it cannot be told)."""
    for guess in (pt_shape, pt_shape[::-1], (1, *pt_shape)):
        back = transform.inverse(guess).shape(pt_shape)
        if back is not None and transform.shape(back) == pt_shape:
            return back
    return None


def layout(
    family: Family, tf_class: str, pt_shapes: dict[str, tuple[int, ...]], map_name: MapName
) -> tuple[dict[str, tuple[int, ...]], list[str], list[str]]:
    """The ``tf_model.h5`` datasets of ``tf_class`` for these PyTorch tensors, in the source's order grouped by top
    layer, with the head copies transformers 4.57 saves; the names dropped (said), the names no TF name reads back
    (gaps)."""
    scope = snake(tf_class)
    if tf_class.removeprefix("TF") in MAIN_ONLY:  # its parts are below the main layer, no top layer of their own
        family = dataclasses.replace(family, heads=())
    placed: dict[str, tuple[int, ...]] = {}
    dropped, unplaced = [], []
    sources: dict[str, str] = {}  # TF name -> the PyTorch name it holds
    bias_leaves: dict[str, str] = {}  # module -> the leaf of its bias, after its weight's (gamma -> beta)
    # weights first: a bias is saved as `beta` where its layer's weight is `gamma`
    for name, shape in sorted(pt_shapes.items(), key=lambda item: not item[0].endswith(".weight")):
        if re.fullmatch(NOT_STORED, name):
            dropped.append(name)
            continue
        module = name.rpartition(".")[0]
        found = None
        tried = [
            tf_name
            # a rename may take the main layer's prefix away (CLIP's one-tower classes): undone from the name as is too
            for given in dict.fromkeys((_full(name, family), name))
            for old in unrenamed(given, family, tf_class.removeprefix("TF"))
            for tf_name in candidates(old, shape, family, scope, bias_leaves.get(module))
        ]
        # the name itself first, then under the main layer's prefix (which a base model's names lack): a name the
        # renames give without that prefix (CLIP's one-tower classes) is never read as one they give with it
        hits = [(tf_name, map_name(tf_name)) for tf_name in dict.fromkeys(tried)]
        for wanted, (tf_name, hit) in itertools.product((name, f"{family.main}.{name}"), hits):
            back = tf_shape(hit[1], shape) if hit is not None and hit[0] == wanted else None
            if back is not None:
                found = (tf_name, back)
                break
        if found is None:
            unplaced.append(name)
            continue
        placed[found[0]] = found[1]
        sources[found[0]] = name
        if found[0].endswith("/gamma:0"):
            bias_leaves[module] = "beta"
    for head, sub in family.head_copies:
        prefix = f"{family.main}/{scope}/{family.main}/{sub}/"
        if any(n.startswith(f"{head}/{scope}/{head}/") for n in placed):
            placed.update({f"{head}/{n.partition('/')[2]}": s for n, s in placed.items() if n.startswith(prefix)})
    for copy, source in family.unread_copies:
        placed.update(
            {
                n[: -len(source) - 2] + copy + ":0": s
                for n, s in list(placed.items())
                if n.endswith(f"/{scope}/{source}:0")
            }
        )
    for fill in family.back_fills:  # where the source holds no tensor for it (an untied LM head places its own)
        for n, s in list(placed.items()):
            if (m := re.fullmatch(fill.beside, n)) is not None:
                placed.setdefault(m.expand(fill.name), fill.shape(s))
                sources.setdefault(m.expand(fill.name), sources.get(n, ""))
    tops = {n.partition("/")[0] for n in placed}
    for rx, owner, _ in family.unscoped_copies:  # the unscoped variable saved again (T5's encoder and decoder)
        for copy in dict.fromkeys([*_alternatives(rx), *(c for n in list(placed) for c in _indexed(n, placed))]):
            copied = re.fullmatch(rx, copy)
            # saved again only by a top layer the class has (T5's encoder-only class has no decoder)
            source = copied.expand(owner) if copied else ""
            if copied and copy.partition("/")[0] in tops and source != copy and source in placed:
                placed[copy] = placed[source]
                sources[copy] = sources.get(source, "")
    order = {name: i for i, name in enumerate(pt_shapes)}
    placed = dict(sorted(placed.items(), key=lambda item: order.get(sources.get(item[0], ""), len(order))))
    return _grouped(placed), dropped, unplaced


def _grouped(placed: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """Datasets grouped by top layer, in the order each top first appears (the writer's layers)."""
    tops: dict[str, list[str]] = {}
    for n in placed:
        tops.setdefault(n.partition("/")[0], []).append(n)
    return {n: placed[n] for names in tops.values() for n in names}


def _main_layer(model_type: object) -> str | None:
    """The main layer's name of a model_type's TF class: transformers' ``base_model_prefix`` of its base model."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    name = MODEL_MAPPING_NAMES.get(model_type) if isinstance(model_type, str) else None
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    prefix = getattr(cls, "base_model_prefix", None)
    return prefix if isinstance(prefix, str) and prefix else None


def with_towers(family: Family, config: dict[str, Any]) -> Family:
    """The family with its composite's towers placed under their main layers (:attr:`Family.towers`), read from the
    source's sub-configs; a tower whose main layer is not known stays where it is (its names then have no place)."""
    paths = []
    for top, key in family.towers:
        sub = config.get(key)
        main = _main_layer(sub.get("model_type")) if isinstance(sub, dict) else None
        if main is not None:
            paths.append((rf"^{re.escape(top)}/(?!{re.escape(main)}/)", f"{top}/{main}/"))
    return dataclasses.replace(family, tf_paths=(*paths, *family.tf_paths)) if paths else family


def of_config(families: Iterable[Family], config: dict[str, Any]) -> tuple[Family, str] | None:
    """The family and PyTorch class a source's ``config.json`` names (``model_type``, ``architectures``)."""
    model_type = config.get("model_type")
    saved = config.get("architectures")
    cls = saved[0] if isinstance(saved, list) and saved and isinstance(saved[0], str) else None
    mine = [f for f in families if model_type in (f.model_type, *f.also)]
    for family in sorted(mine, key=lambda f: cls not in f.classes):  # DPR: one family per class
        return family, cls if cls in family.classes else ""
    return None
