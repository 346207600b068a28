"""`bridge unused GRAPH.meta --loss T`: TF1 training graphs written by the real tf.compat.v1 Saver, read without TF."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli
from tests.cli.test_light import _BLOCKED, HEAVY

USED = {"encoder/kernel", "encoder/bias", "head/kernel", "head/bias"}
EXPECTED = {
    "unused_head/kernel": "never_read", "unused_head/bias": "never_read",  # created, never applied
    "probe/scale": "no_gradient",  # read by a summary only
    "gate/scale": "no_gradient",  # in the loss, but behind tf.stop_gradient
}  # fmt: skip


def write_graph(tf, path, *, resource: bool) -> dict[str, bool]:
    """A TF1 regression graph + Adam train op + Saver; returns {variable: tf.gradients gave None}."""
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, (None, 4), name="x")
        y = v1.placeholder(tf.float32, (None, 1), name="y")

        def dense(scope, inputs, units):
            with v1.variable_scope(scope):
                w = v1.get_variable("kernel", (inputs.shape[-1], units), use_resource=resource)
                b = v1.get_variable("bias", (units,), initializer=v1.zeros_initializer(), use_resource=resource)
            return tf.matmul(inputs, w) + b

        hidden = tf.nn.relu(dense("encoder", x, 8))
        pred = dense("head", hidden, 1)
        with v1.variable_scope("unused_head"):
            v1.get_variable("kernel", (8, 3), use_resource=resource)
            v1.get_variable("bias", (3,), use_resource=resource)
        with v1.variable_scope("probe"):
            probe = v1.get_variable("scale", (), use_resource=resource)
        with v1.variable_scope("gate"):
            gate = v1.get_variable("scale", (), use_resource=resource)
        v1.summary.scalar("probe", tf.identity(tf.reduce_sum(hidden) * probe, name="side_output"))
        loss = tf.reduce_mean(tf.square(pred * tf.stop_gradient(gate) - y), name="loss")
        variables = v1.trainable_variables()
        v1.train.AdamOptimizer(0.01).minimize(loss, global_step=v1.train.get_or_create_global_step())
        v1.train.Saver().export_meta_graph(str(path))
        grads = v1.gradients(loss, variables)
    return {v.op.name: g is None for v, g in zip(variables, grads, strict=True)}


@pytest.fixture(scope="module", params=[False, True], ids=["ref", "resource"])
def graph(request, tf, tmp_path_factory):
    path = tmp_path_factory.mktemp("tf1") / "model.ckpt.meta"
    no_grad = write_graph(tf, path, resource=request.param)
    return path, no_grad


def test_exactly_the_unused_scopes_with_kinds(graph):
    path, no_grad = graph
    report = bridge.find_unused_in_graph(path, ["loss:0"])
    assert {i.name: i.kind for i in report.items} == EXPECTED
    # TF's own tf.gradients agrees: None exactly for the reported variables
    assert {name for name, none in no_grad.items() if none} == set(EXPECTED)
    assert {i.scope for i in report.items} == {"unused_head", "probe", "gate"}
    assert report.total_params == len(USED) + len(EXPECTED) and report.exit_code == 1
    assert "stop creating it" in report.by_kind("never_read")[0].hint
    assert "var_list" in report.by_kind("no_gradient")[0].hint
    assert any("gate/scale" in n and "StopGradient" in n for n in report.notes)


def test_cli_json_exit_1_and_op_name_accepted(graph):
    path, _ = graph
    result = CliRunner().invoke(cli, ["unused", str(path), "--loss", "loss", "--json"])
    assert result.exit_code == 1, result.output
    payload = json.loads(result.output)
    assert {(u["name"], u["scope"], u["kind"]) for u in payload["unused"]} == {
        (name, name.split("/")[0], kind) for name, kind in EXPECTED.items()
    }
    assert all(u["hint"] for u in payload["unused"])
    assert payload["summary"]["framework"] == "tf1-graph" and payload["summary"]["trainable_unused"] == 4
    assert payload["losses"] == ["loss"]


def test_cli_text_groups_by_scope(graph):
    path, _ = graph
    result = CliRunner().invoke(cli, ["unused", str(path), "--loss", "loss:0"])
    assert result.exit_code == 1, result.output
    assert "backward closure of loss:0" in result.output
    assert "  unused_head: 2 parameters, 27 elements (bias, kernel)" in result.output


def test_every_output_in_the_closure_is_exit_0(graph):
    """Treat the side outputs as outputs too: only the never-applied scope is left."""
    path, _ = graph
    result = CliRunner().invoke(cli, ["unused", str(path), "--loss", "loss:0", "--output", "side_output:0", "--json"])
    payload = json.loads(result.output)
    assert {u["name"] for u in payload["unused"]} == {"unused_head/kernel", "unused_head/bias", "gate/scale"}


@pytest.mark.parametrize(
    "args, words",
    [
        ([], ["No loss or output tensor given", "model.ckpt.meta", "--loss loss:0"]),
        (["--loss", "los:0"], ["No such tensor in the graph", "for tensor `los:0`", "Did you mean", "loss:0"]),
        (["--loss", "Adam"], ["Not a loss", "train op"]),
        (["--loss", "loss:0", "--steps", "2"], ["Options do not apply to a TF1 graph"]),
    ],
)
def test_bad_input_is_exit_2(graph, args, words):
    path, _ = graph
    result = CliRunner().invoke(cli, ["unused", str(path), *args])
    assert result.exit_code == 2, result.output
    assert all(w in result.output for w in words), result.output
    assert "Traceback" not in result.output


def test_graph_is_read_with_frameworks_unimportable(graph):
    path, _ = graph
    invocation = [["unused", str(path), "--loss", "loss:0", "--json"]]
    out = subprocess.run(
        [sys.executable, "-c", _BLOCKED.format(heavy=HEAVY), json.dumps(invocation)],
        capture_output=True,
        text=True,
        check=True,
    )
    [[code, tail]] = json.loads(out.stdout.strip().splitlines()[-1])
    assert code == 1 and '"ok": false' in tail


def test_truncated_file_is_corrupt(graph, tmp_path):
    path, _ = graph
    cut = tmp_path / "cut.meta"
    cut.write_bytes(path.read_bytes()[:1000])
    result = CliRunner().invoke(cli, ["unused", str(cut), "--loss", "loss:0"])
    assert result.exit_code == 2 and "Not a binary MetaGraphDef" in result.output


def test_bert_pretraining_graph(shared_fixtures, tf):
    """google-research BERT's run_pretraining graph (TF 1.1x; ops today's TF cannot import): the total loss
    reaches every variable; the masked-LM loss alone leaves the pooler and the next-sentence head."""
    from tensorflow.core.framework import variable_pb2
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = shared_fixtures / "keras-bert-tiny-tf1" / "bert_model.ckpt.meta"
    proto = meta_graph_pb2.MetaGraphDef.FromString(meta.read_bytes())
    trainable = [
        variable_pb2.VariableDef.FromString(b).variable_name
        for b in proto.collection_def["trainable_variables"].bytes_list.value
    ]
    assert list(proto.collection_def["losses"].node_list.value) == ["add_1:0"]

    total = bridge.find_unused_in_graph(meta, ["add_1:0"])
    assert total.items == [] and total.total_params == len(trainable) == 46
    mlm = bridge.find_unused_in_graph(meta, ["cls/predictions/truediv:0"])
    assert {i.name: i.kind for i in mlm.items} == dict.fromkeys(
        [
            "bert/pooler/dense/kernel",
            "bert/pooler/dense/bias",
            "cls/seq_relationship/output_weights",
            "cls/seq_relationship/output_bias",
        ],
        "no_gradient",
    )
    result = CliRunner().invoke(cli, ["unused", str(meta)])
    assert result.exit_code == 2 and "--loss add_1:0" in result.output
    assert CliRunner().invoke(cli, ["unused", str(meta), "--loss", "add_1:0"]).exit_code == 0
