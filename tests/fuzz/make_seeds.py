"""Write the fuzz seeds: one small file (or directory) per format, by the format's real writer.

    PYTHONPATH=$PWD .venv/bin/python tests/fuzz/make_seeds.py      # the test venv: TF 2.21, Keras 3, tf-keras, torch

Writes tests/fuzz/seeds/<name>/ (committed; the fuzz tests never import a framework). transformers' tf_model.h5 is
not written here: the seed list points at tests/fixtures/hf-tf-heads/TFBertForSequenceClassification/tf (written by
transformers 4.57.6, see tests/fixtures/SOURCE.txt).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SEEDS = Path(__file__).resolve().parent / "seeds"


def _fresh(name: str) -> Path:
    target = SEEDS / name
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    return target


def torch_side() -> None:
    import safetensors.torch
    import torch

    torch.manual_seed(0)
    emb = torch.randn(8, 4)
    state = {
        "bert.embeddings.word_embeddings.weight": emb,
        "bert.pooler.dense.weight": torch.randn(4, 4),
        "bert.pooler.dense.bias": torch.zeros(4),
        "cls.predictions.decoder.weight": emb,  # tied: one storage, two names
        "half": torch.arange(6, dtype=torch.float16).reshape(2, 3),
        "view": torch.arange(12, dtype=torch.int64)[2:10:2],  # an offset, strided view
        "step": torch.tensor(3),
    }
    out = _fresh("torch-zip")
    torch.save(state, out / "pytorch_model.bin")
    out = _fresh("torch-legacy")
    torch.save(state, out / "model.pt", _use_new_zipfile_serialization=False)

    out = _fresh("torch-sharded")
    names = list(state)
    shards = {"pytorch_model-00001-of-00002.bin": names[:3], "pytorch_model-00002-of-00002.bin": names[3:]}
    weight_map = {}
    for file, keys in shards.items():
        torch.save({k: state[k].clone() for k in keys}, out / file)
        weight_map.update(dict.fromkeys(keys, file))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values())}}
    index["weight_map"] = weight_map
    (out / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))

    plain = {k: v.clone().contiguous() for k, v in state.items()}
    out = _fresh("safetensors")
    safetensors.torch.save_file(plain, str(out / "model.safetensors"), metadata={"format": "pt"})
    out = _fresh("safetensors-sharded")
    weight_map = {}
    for i, keys in enumerate((names[:3], names[3:]), start=1):
        file = f"model-0000{i}-of-00002.safetensors"
        safetensors.torch.save_file({k: plain[k] for k in keys}, str(out / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, file))
    index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in plain.values())}}
    index["weight_map"] = weight_map
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def dcp() -> None:
    """torch.distributed.checkpoint.save in one process (no process group): `.metadata` + `__0_0.distcp`."""
    import torch
    import torch.distributed.checkpoint as dist_cp

    torch.manual_seed(0)
    state = {
        "bert.embeddings.word_embeddings.weight": torch.randn(8, 4),
        "bert.pooler.dense.bias": torch.zeros(4),
        "half": torch.arange(6, dtype=torch.float16).reshape(2, 3),
        "brain": torch.arange(4, dtype=torch.bfloat16),
        "step": 3,
    }
    dist_cp.save(state, checkpoint_id=str(_fresh("dcp")))


def companion_pair() -> None:
    """A companion folder: the ELECTRA fixture's discriminator and generator, each saved by transformers'
    ``save_pretrained`` into ``discriminator/`` and ``generator/`` (bridge converts the TF1 fixture first)."""
    import tempfile

    import transformers

    from bridge.commands.convert import convert

    out = _fresh("electra-pair")
    source = Path(__file__).resolve().parents[1] / "fixtures" / "electra-tf1"
    with tempfile.TemporaryDirectory() as tmp:
        for folder, class_name in (("discriminator", "ElectraForPreTraining"), ("generator", "ElectraForMaskedLM")):
            convert(source, to="pytorch", target=class_name, out=Path(tmp) / folder)
            model = getattr(transformers, class_name).from_pretrained(Path(tmp) / folder)
            model.save_pretrained(out / folder)


def keras_hub_preset() -> None:
    """A KerasHub preset by KerasHub's own ``save_to_preset``: a one-layer BERT backbone, random weights."""
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=16, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, max_sequence_length=8
    )
    backbone.save_to_preset(str(_fresh("keras-hub-preset")))


def plain_hdf5() -> None:
    import h5py

    out = _fresh("hdf5")
    with h5py.File(out / "data.h5", "w") as f:
        f.create_dataset("plain", data=np.arange(6, dtype=np.float32).reshape(2, 3))
        f.create_dataset("group/gzip", data=np.arange(400, dtype=np.int32), compression="gzip", chunks=(100,))
        f.create_dataset("group/chunked", data=np.ones((8, 8), np.float64), chunks=(4, 4))
        f.create_dataset("strings", data=np.array([b"a", b"bc"]))
        f.attrs["note"] = "fuzz seed"


def tf_side() -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    out = _fresh("tf1")
    with tf.Graph().as_default():
        v1.get_variable("bert/embeddings/word_embeddings", shape=(6, 4), initializer=v1.ones_initializer())
        v1.get_variable("part/emb", shape=(6, 2), partitioner=v1.fixed_size_partitioner(2))
        v1.Variable(np.array([b"a", b"bc"], dtype=object), name="names")
        v1.Variable(np.int64(5), name="global_step")
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run(v1.global_variables_initializer())
            saver.save(session, str(out / "model.ckpt"), write_meta_graph=False)

    out = _fresh("tf2")
    values = {f"v{i}": tf.Variable(np.arange(16, dtype=np.float32) * (i + 1)) for i in range(3)}
    values["names"] = tf.Variable(np.array([b"alpha", b"beta"], dtype=object))
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=100)
    options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
    tf.train.Checkpoint(**values).write(str(out / "ckpt"), options=options)

    class Affine(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3), name="w")
            self.b = tf.Variable(np.zeros(3, np.float32), name="b")

    out = _fresh("saved-model")
    shutil.rmtree(out)
    tf.saved_model.save(Affine(), str(out))


def keras3() -> None:
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(4, name="dense"), keras.layers.Dense(2, name="out")]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((2, 3)), np.ones((2, 2)), epochs=1, verbose=0)
    out = _fresh("keras3-weights")
    model.save_weights(out / "model.weights.h5")
    out = _fresh("keras3-archive")
    model.save(out / "model.keras")


def keras2() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(4, name="dense")])
    model.compile(optimizer="adam", loss="mse")
    model.fit(np.ones((2, 3)), np.ones((2, 4)), epochs=1, verbose=0)
    out = _fresh("keras2-h5")
    model.save(str(out / "model.h5"))


if __name__ == "__main__":
    import torch  # noqa: F401  (torch before TensorFlow, as the test suite does)

    steps = {
        "torch": torch_side,
        "dcp": dcp,
        "pair": companion_pair,
        "keras-hub": keras_hub_preset,
        "hdf5": plain_hdf5,
        "tf": tf_side,
        "keras3": keras3,
        "keras2": keras2,
    }
    for name in sys.argv[1:] or list(steps):
        steps[name]()
    print("\n".join(sorted(str(p.relative_to(SEEDS)) for p in SEEDS.rglob("*") if p.is_file())))
