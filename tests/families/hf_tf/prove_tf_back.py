"""One-time proof of the hf-tf way back with transformers 4.57's own TF classes (run once; CI never has 4.57).

    PYTHONPATH=. /work/main/.venv/bin/python tests/families/hf_tf/prove_tf_back.py make DIR [TFClass...]
    PYTHONPATH=. /work/venv-tf4/bin/python tests/families/hf_tf/prove_tf_back.py prove DIR

``make`` (bridge's environment, transformers 5): for every fixture class bridge writes back
(``tests/fixtures/hf-tf-families/<TFClass>``), the fixture's ``tf_model.h5`` -> PyTorch (bridge) -> ``tf_model.h5``
(bridge), into ``DIR/<TFClass>``.  ``prove`` (transformers 4.57.6): ``TF<Class>.from_pretrained(DIR/<TFClass>,
output_loading_info=True)`` must report nothing missing (weightless layers aside, said), unexpected (but what it
reports for the fixture's own file too, said) or mismatched, and its outputs on the fixture's ``io.npz`` inputs must
match the fixture's outputs (the 4.57 model's own) within 1e-5; the results are merged into
``tests/fixtures/transformers-4.57-tf-back.json`` (class -> {loaded_clean, max_abs_diff, weightless_layers_unlisted}),
which ``test_tf_back_proof.py`` reads.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
FAMILIES_DIR = FIXTURES / "hf-tf-families"
PROOF = FIXTURES / "transformers-4.57-tf-back.json"
MAX_DIFF = 1e-5


def written_classes() -> list[str]:
    """The fixture classes bridge writes back (needs bridge's environment)."""
    from bridge.families.hf_tf.data import WRITTEN_BACK, back
    from bridge.families.hf_tf.generic_pack import FAMILIES

    out = []
    for folder in sorted(p for p in FAMILIES_DIR.iterdir() if p.is_dir()):
        cls = folder.name.removeprefix("TF")
        family = next(f for f in FAMILIES if cls in f.classes)
        if family.model_type in WRITTEN_BACK and cls not in back.NOT_WRITTEN:
            out.append(folder.name)
    return out


def make(out: Path, only: list[str]) -> None:
    """Each written-back fixture class (or those of ``only``) round-tripped into ``out/<TFClass>``."""
    import tempfile

    import bridge

    for tf_class in only or written_classes():
        with tempfile.TemporaryDirectory() as tmp:
            bridge.convert(str(FAMILIES_DIR / tf_class / "tf"), to="pytorch", out=f"{tmp}/pt")
            bridge.convert(f"{tmp}/pt", to="tensorflow", target="hf-tf", out=str(out / tf_class))
        print(tf_class, flush=True)


def prove(written: Path) -> None:
    import numpy as np
    import tensorflow as tf
    import transformers

    assert transformers.__version__.startswith("4.57"), transformers.__version__
    results = {}
    for folder in sorted(p for p in written.iterdir() if p.is_dir()):
        meta = json.loads((FAMILIES_DIR / folder.name / "meta.json").read_text())
        io = np.load(FAMILIES_DIR / folder.name / "io.npz")
        model, info = getattr(transformers, folder.name).from_pretrained(str(folder), output_loading_info=True)
        # 4.57's h5 loader reports a top layer absent from the file's `layer_names` as missing, weights or not:
        # bridge lists the layers that hold weights, so a weightless one (a dropout) is said, not a gap
        weightless = sorted(n for n in info["missing_keys"] if not model.get_layer(n).weights)
        missing = sorted(set(info["missing_keys"]) - set(weightless))
        # 4.57 may report variables of its own file unexpected (Data2VecVision's auxiliary head `convs.0`, which its
        # forward never reads): the same report for the file 4.57 wrote is its own, said, not bridge's gap
        unexpected = sorted(info["unexpected_keys"])
        own: list[str] = []
        if unexpected:
            _, own_info = getattr(transformers, folder.name).from_pretrained(
                str(FAMILIES_DIR / folder.name / "tf"), output_loading_info=True
            )
            own = sorted(set(own_info["unexpected_keys"]) & set(unexpected))
        clean = not (missing or set(unexpected) - set(own) or info["mismatched_keys"])
        try:
            out = model(**{k: tf.constant(io[k]) for k in meta["inputs"]}, training=False)
            diff, of = max(float(np.max(np.abs(out[k].numpy() - io[k]), initial=0.0)) for k in meta["outputs"]), None
        except NameError as e:  # TAPAS' QA forward needs tensorflow_probability (`tfp`), which this env lacks
            # the same class loaded from 4.57's own file: equal weights, by name, are the same forward
            own_model = getattr(transformers, folder.name).from_pretrained(str(FAMILIES_DIR / folder.name / "tf"))
            pairs = list(zip(model.weights, own_model.weights, strict=True))  # one class: the same order
            diff = max(float(np.max(np.abs(a.numpy() - b.numpy()), initial=0.0)) for a, b in pairs)
            of = f"the weights, against the class loaded from 4.57's own file (forward not run: {e})"
        results[folder.name] = {"loaded_clean": clean, "max_abs_diff": diff, "weightless_layers_unlisted": weightless}
        if of is not None:
            results[folder.name]["max_abs_diff_of"] = of
        if own:
            results[folder.name]["unexpected_as_for_its_own_file"] = own
        print(folder.name, clean, diff, "" if clean else info, flush=True)
        tf.keras.backend.clear_session()
    # merged into the classes proven before: a run over some classes (the newly written ones) keeps the others
    proven = json.loads(PROOF.read_text()) if PROOF.exists() else {}
    PROOF.write_text(json.dumps(dict(sorted({**proven, **results}.items())), indent=1) + "\n")
    bad = [c for c, r in results.items() if not r["loaded_clean"] or r["max_abs_diff"] > MAX_DIFF]
    print(f"{len(results) - len(bad)} of {len(results)} proven; not: {bad}")


if __name__ == "__main__":
    # set here, not on import: the test that reads PROOF imports this module, and the suite's tf.keras is Keras 3
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    if sys.argv[1] == "make":  # the classes named after DIR only (the newly written ones), else all written back
        make(Path(sys.argv[2]), sys.argv[3:])
    else:
        prove(Path(sys.argv[2]))
