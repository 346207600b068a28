"""CLI hygiene: convert's `next:` line runs as printed, verify takes convert's plan options, user rules that
match nothing are reported, a closed pipe ends quietly, `--debug` goes anywhere, class typos get a
did-you-mean, a refused plan names its gaps, and `--source-format` skips detection on convert."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import bridge
from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"
DDP = REPO / "tests" / "fixtures" / "bert-ddp"
POOL_KERNEL = "bert/pool/dense/kernel=bert.pooler.dense.weight@transpose"
POOL_BIAS = "bert/pool/dense/(bias)=bert.pooler.dense.{1}"


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def forward_frameworks(torch):
    pytest.importorskip("tensorflow")  # after torch (conftest order)
    return pytest.importorskip("transformers")


def _convert_then_next(*convert_args: str) -> tuple[list[str], Result]:
    """Run `bridge convert ...`, then exactly the `next: bridge verify ...` line it printed."""
    result = _invoke("convert", *convert_args, "-q")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("next: bridge verify ")]
    assert len(lines) == 1, result.output
    args = shlex.split(lines[0].removeprefix("next: bridge "))
    return args, CliRunner().invoke(cli, args)


def _compared(output: str) -> int:
    found = re.search(r"^values: (\d+)/(\d+) tensors bit-exact", output, re.M)
    assert found, output
    assert found.group(1) == found.group(2), output
    return int(found.group(2))


# 1. convert's next line carries every option that shaped the plan, and works as printed.


def test_next_line_strip_prefix_pytorch(tmp_path):
    out = str(tmp_path / "o")
    args, result = _convert_then_next(str(DDP), "--to", "pytorch", "--strip-prefix", "module.", "-o", out)
    assert args[args.index("--strip-prefix") + 1] == "module."
    assert result.exit_code == 0, result.output
    with bridge.load(DDP) as src:  # every model tensor of the source is compared
        assert _compared(result.output) == sum(r.kind == "model" for r in src.values()) == 39


@pytest.mark.slow
def test_next_line_strip_and_add_prefix_tensorflow(tmp_path):
    out = tmp_path / "o"
    args, result = _convert_then_next(
        str(DDP), "--to", "tensorflow", "--strip-prefix", "module.", "--add-prefix", "bert.", "-o", str(out)
    )
    assert ["--strip-prefix", "module.", "--add-prefix", "bert."] == args[-4:]
    assert result.exit_code == 0, result.output
    assert _compared(result.output) == 39
    # the forward reads the source under the names the options give it (transformers knows no `module.`)
    assert "forward sequence_output [2, 16, 16]" in result.output and "no forward check" not in result.output
    # The oracle for the values: the converted kernel is the source weight transposed.
    with bridge.load(DDP) as src, bridge.load(out) as dst:
        kernel = dst["bert/encoder/layer_0/attention/self/query/kernel"].numpy()
        assert (kernel == src["module.encoder.layer.0.attention.self.query.weight"].numpy().T).all()


def test_next_line_source_format(tmp_path):
    weights = tmp_path / "weights.dat"
    shutil.copyfile(DDP / "pytorch_model.bin", weights)
    shutil.copyfile(DDP / "config.json", tmp_path / "config.json")
    args, result = _convert_then_next(
        str(weights),
        "--source-format",
        "torch",
        "--to",
        "pytorch",
        "--strip-prefix",
        "module.",
        "-o",
        str(tmp_path / "o"),
    )
    assert args[args.index("--source-format") + 1] == "torch"
    assert result.exit_code == 0 and _compared(result.output) == 39, result.output


def test_source_format_skips_detection(tmp_path):
    # The same bytes forced as safetensors: the safetensors reader runs (and refuses), not detection.
    result = _invoke(
        "convert", DDP / "pytorch_model.bin", "--source-format", "safetensors", "--to", "pytorch", "-o", tmp_path / "o"
    )
    assert result.exit_code == 2 and "safetensors header" in result.output, result.output
    weights = DDP / "pytorch_model.bin"
    for command in (["check", weights, "--to", "pytorch"], ["verify", weights, DDP]):
        forced = _invoke(*command, "--source-format", "safetensors")
        assert forced.exit_code == 2 and "safetensors header" in forced.output, forced.output
    assert _invoke("check", weights, "--to", "pytorch", "--format", "safetensors").exit_code == 2  # still works


@pytest.mark.slow
def test_next_line_config(forward_frameworks, tmp_path):
    source = tmp_path / "ckpt"  # no bert_config.json beside it: --config is the only config
    shutil.copytree(EXAMPLE, source)
    (source / "bert_config.json").rename(tmp_path / "my_config.json")
    args, result = _convert_then_next(
        str(source), "--to", "pytorch", "--config", str(tmp_path / "my_config.json"), "-o", str(tmp_path / "o")
    )
    assert args[args.index("--config") + 1] == str(tmp_path / "my_config.json")
    assert result.exit_code == 0 and _compared(result.output) == 46, result.output
    assert "forward sequence_output" in result.output


@pytest.mark.slow
def test_next_line_target_class(forward_frameworks, tmp_path):
    args, result = _convert_then_next(
        str(EXAMPLE), "--to", "pytorch", "--target", "BertModel", "-o", str(tmp_path / "o")
    )
    assert "--target" not in args  # the class is implied by OUT, whose names verify compares with
    assert "--dropped-heads" in args  # BertModel has no cls heads: dropped because the user asked for it
    assert result.exit_code == 0 and "dropped on purpose (--dropped-heads)" in result.output, result.output
    assert _compared(result.output) == 39 and "forward pooled_output" in result.output


def test_next_line_rules_file_and_map(forward_frameworks, renamed, tmp_path):
    rules = tmp_path / "my_rules.yaml"
    rules.write_text(
        "rules:\n  - source: 'bert/pool/dense/kernel'\n    target: 'bert.pooler.dense.weight'\n"
        "    transform: transpose\n"
    )
    args, result = _convert_then_next(
        str(renamed), "--to", "pytorch", "--rules", str(rules), "--map", POOL_BIAS, "-o", str(tmp_path / "o")
    )
    assert args[args.index("--rules") + 1] == str(rules) and args[args.index("--map") + 1] == POOL_BIAS
    assert result.exit_code == 0, result.output
    assert _compared(result.output) == 46


# 2. With --map, the forward check runs: the reference reads the renamed tensors as the plan places them.


def test_verify_after_map_runs_the_forward(forward_frameworks, renamed, tmp_path):
    out = tmp_path / "o"
    maps = ["--map", POOL_KERNEL, "--map", POOL_BIAS]
    assert _invoke("convert", renamed, "--to", "pytorch", *maps, "-o", out, "-q").exit_code == 0
    report = json.loads(_invoke("verify", renamed, out, *maps, "--json").output)
    assert report["ok"] and report["values"]["compared"] == 46
    assert {o["name"] for o in report["outputs"]} == {"sequence_output", "pooled_output", "mlm_logits", "nsp_logits"}
    assert not any("skipped" in n for n in report["notes"])


def test_forward_after_map_still_catches_a_wrong_transform(forward_frameworks, renamed, tmp_path):
    # A square kernel mapped without its transpose: every value is "as planned", the model is not.
    out = tmp_path / "o"
    maps = ["--map", "bert/pool/dense/kernel=bert.pooler.dense.weight", "--map", POOL_BIAS]
    assert _invoke("convert", renamed, "--to", "pytorch", *maps, "-o", out, "-q").exit_code == 0
    result = _invoke("verify", renamed, out, *maps, "--json")
    report = json.loads(result.output)
    assert result.exit_code == 1 and report["values"]["bit_exact"] == report["values"]["compared"]
    failed = {o["name"] for o in report["outputs"] if not o["ok"]}
    assert "pooled_output" in failed and "sequence_output" not in failed


def test_forward_skip_note_is_one_sentence(forward_frameworks, renamed, tmp_path):
    out = tmp_path / "o"
    maps = ["--map", POOL_KERNEL, "--map", POOL_BIAS]
    assert _invoke("convert", renamed, "--to", "pytorch", *maps, "-o", out, "-q").exit_code == 0
    result = _invoke("verify", renamed, out, "--map", POOL_KERNEL)  # the bias rule forgotten
    notes = [line for line in result.output.splitlines() if "forward check skipped" in line]
    assert notes == [
        "note: forward check skipped: the TF reference forward needs `bert/pooler/dense/bias`, which "
        "no tensor of the TF side fills (nor any --map/--rules rule)"
    ]


# 3. User rules that match nothing are reported, in text and JSON.


def test_rules_matching_nothing_are_reported(tmp_path):
    rules = tmp_path / "my_rules.yaml"
    rules.write_text(
        "rules:\n  - source: 'bert/poolr/dense/bias'\n    target: 'bert.pooler.dense.bias'\n"
        "  - source: 'bert/pooler/dense/kernel'\n    target: 'bert.pooler.dense.weight'\n"
        "    transform: transpose\n"
    )
    args = ["check", EXAMPLE, "--to", "pytorch", "--target", "BertModel", "--rules", rules, "--map", "nothing/x=y"]
    text = _invoke(*args).output
    assert (
        "note: rule 1 of my_rules.yaml (source 'bert/poolr/dense/bias') matched no tensor: its regex must match "
        "a whole source name (did you mean `bert/pooler/dense/bias`?)"
    ) in text
    assert "note: --map 'nothing/x=y' matched no tensor" in text
    assert "rule 2 of my_rules.yaml" not in text
    plan = json.loads(_invoke(*args, "--json").output)
    assert plan["user_rules"] == [
        {"origin": "--map", "index": 1, "source": "nothing/x", "matched": 0},
        {"origin": str(rules), "index": 1, "source": "bert/poolr/dense/bias", "matched": 0},
        {"origin": str(rules), "index": 2, "source": "bert/pooler/dense/kernel", "matched": 1},
    ]
    assert "user_rules" not in json.loads(_invoke("check", EXAMPLE, "--to", "pytorch", "--json").output)


def test_rules_over_a_tf_layout_count_its_names():
    # PyTorch -> TF: rules are matched against the layout's TF names, not the source's.
    plan = bridge.check(
        DDP,
        to="tensorflow",
        strip_prefix="module.",
        add_prefix="bert.",
        maps=("bert/pooler/dense/(kernel|bias)=bert.pooler.dense.{1}",),
    )
    assert [u.matched for u in plan.user_rules] == [2]


def test_rules_between_two_pytorch_files_say_they_are_unused():
    result = _invoke("check", DDP, "--to", "pytorch", "--strip-prefix", "module.", "--map", "a=b")
    assert "note: --map/--rules rules are not used: both sides are PyTorch" in result.output


# 4. A closed pipe ends quietly.


@pytest.mark.parametrize("args", [["inspect", str(EXAMPLE), "--all"], ["check", str(EXAMPLE), "--to", "pytorch"]])
def test_closed_pipe_ends_quietly(args):
    with subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # before the command writes anything: its first write meets EPIPE
        err = proc.stderr.read()
        code = proc.wait(timeout=60)
    assert code == 0 and err == b""


def test_pipe_into_head_keeps_what_was_read():
    shell = f"{shlex.quote(sys.executable)} -m bridge.cli inspect {shlex.quote(str(EXAMPLE))} --all | head -1"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == f"{EXAMPLE}\n"


# 5. --debug before or after the subcommand.


@pytest.mark.parametrize("position", ["before", "after"])
def test_debug_anywhere_shows_the_traceback(tmp_path, position):
    missing = str(tmp_path / "nothing")
    args = ["--debug", "inspect", missing] if position == "before" else ["inspect", missing, "--debug"]
    result = CliRunner().invoke(cli, args)
    assert isinstance(result.exception, bridge.BridgeError) and result.exit_code != 0
    plain = CliRunner().invoke(cli, ["inspect", missing])
    assert plain.exit_code == 2 and "error: Checkpoint not found" in plain.output
    env = CliRunner(env={"BRIDGE_DEBUG": "1"}).invoke(cli, ["inspect", missing])
    assert isinstance(env.exception, bridge.BridgeError)


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_subcommand_takes_debug(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0 and "--debug" in result.output


# 6. Class-name typos: did-you-mean and the pack's classes.


def test_class_typo_without_transformers_import():
    probe = (
        "import json, sys\nfrom click.testing import CliRunner\nfrom bridge.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['check', {str(EXAMPLE)!r}, '--to', 'pytorch', '--target', "
        "'BertForPretraining'])\n"
        "print(json.dumps([r.exit_code, r.output, 'transformers' in sys.modules, "
        "'torch' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    code, output, transformers, torch = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 2 and not transformers and not torch
    assert "Unknown --target class 'BertForPretraining'" in output and "Did you mean BertForPreTraining?" in output
    from bridge.rules import get_pack

    assert f"The google-bert rules know: {', '.join(get_pack('google-bert').pt.targets)}" in output
    assert "Traceback" not in output


def test_class_typo_suggests_a_transformers_class(forward_frameworks):
    assert hasattr(forward_frameworks, "RobertaModel")  # the oracle: the class the suggestion names exists
    result = _invoke("check", EXAMPLE, "--to", "pytorch", "--target", "RobertaModle")
    assert result.exit_code == 2 and "Did you mean RobertaModel?" in result.output, result.output
    assert "BertForPreTraining" in result.output  # the pack's classes are listed


# 7. A refused plan names its first gaps.


def test_convert_refusal_names_the_gaps(tmp_path):
    result = _invoke("convert", DDP, "--to", "pytorch", "--target", "BertModel", "-o", tmp_path / "o")
    assert result.exit_code == 1 and not (tmp_path / "o").exists()
    plan = bridge.check(DDP, to="pytorch", target="BertModel")
    gaps = [x for x in plan.missing if not x.expected] + [x for x in plan.unused if not x.expected]
    text = " ".join(result.output.split())
    assert f"{len(gaps)} gap(s): `{gaps[0].name}` {list(gaps[0].shape)} missing: {gaps[0].reason}" in text
    assert f"... and {len(gaps) - 3} more" in text
    assert "suspicious: 39 of 39 model tensors unmatched: prefix mismatch? try --strip-prefix module." in text
    command = re.search(r"`(bridge check [^`]*)` shows the whole report", text)
    assert command is not None, text
    again = CliRunner().invoke(cli, shlex.split(command.group(1))[1:])
    assert again.exit_code == 1 and "verdict: GAPS" in again.output
