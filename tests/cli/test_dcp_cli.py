"""The CLI on torch.distributed.checkpoint directories: inspect/check/convert, --format dcp, damaged, hostile."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]
BERT_PT = REPO / "tests" / "fixtures" / "hf-tf-bert-pt"


@pytest.fixture(scope="module")
def bert_dcp(torch, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The BERT fixture's state dict saved by torch.distributed.checkpoint.save (one process), config beside it."""
    import torch.distributed.checkpoint as dcp
    from safetensors.torch import load_file

    folder = tmp_path_factory.mktemp("bert") / "dcp"
    dcp.save(load_file(BERT_PT / "model.safetensors"), checkpoint_id=folder)
    shutil.copy(BERT_PT / "config.json", folder / "config.json")
    return folder


def test_formats_lists_dcp_and_convert_help_teaches_it():
    runner = CliRunner()
    assert "dcp" in runner.invoke(cli, ["formats"]).output
    help_text = runner.invoke(cli, ["convert", "--help"]).output
    assert "dcp" in help_text and "torch.distributed.checkpoint" in help_text


def test_inspect_check_convert_a_dcp_directory(bert_dcp, tmp_path):
    runner = CliRunner()
    inspected = runner.invoke(cli, ["inspect", str(bert_dcp), "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["format"] == "dcp"
    assert runner.invoke(cli, ["check", str(bert_dcp), "--to", "pytorch"]).exit_code == 0
    out = tmp_path / "st"
    done = runner.invoke(cli, ["convert", str(bert_dcp), "--to", "pytorch", "-o", str(out), "-q"])
    assert done.exit_code == 0, done.output
    assert (out / "model.safetensors").read_bytes() == (BERT_PT / "model.safetensors").read_bytes()
    verified = runner.invoke(cli, ["verify", str(bert_dcp), str(out), "--no-forward"])
    assert verified.exit_code == 0, verified.output


def test_convert_format_dcp_json(tmp_path):
    out = tmp_path / "dcp"
    done = CliRunner().invoke(
        cli, ["convert", str(BERT_PT), "--to", "pytorch", "--format", "dcp", "-o", str(out), "--json"]
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["files"] == [".metadata", "__0_0.distcp", "config.json"]
    assert any("torch.distributed.checkpoint.load" in n for n in report["notes"])
    assert sorted(p.name for p in out.iterdir()) == [".metadata", "__0_0.distcp", "config.json"]


def test_inspect_of_dcp_imports_no_framework(bert_dcp):
    probe = (
        "import json, sys\n"
        "for m in ('torch', 'tensorflow', 'transformers', 'keras'): sys.modules[m] = None\n"
        "from click.testing import CliRunner\nfrom bridge.cli import cli\n"
        f"r = [CliRunner().invoke(cli, a).exit_code for a in "
        f"[['inspect', {str(bert_dcp)!r}, '--stats'], ['check', {str(bert_dcp)!r}, '--to', 'pytorch']]]\n"
        "print(json.dumps(r))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, 0]


def test_truncated_distcp_is_exit_2_naming_file_and_tensor(bert_dcp, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(bert_dcp, folder)
    data = folder / "__0_0.distcp"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    for args in (["inspect", str(folder)], ["convert", str(folder), "--to", "pytorch", "-o", str(tmp_path / "o")]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "__0_0.distcp" in result.output and "for tensor `" in result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_damaged_item_inside_the_file_is_exit_2(bert_dcp, tmp_path):
    """Sizes intact, an item's zip directory overwritten: found when its value is read."""
    folder = tmp_path / "bad"
    shutil.copytree(bert_dcp, folder)
    data = folder / "__0_0.distcp"
    raw = bytearray(data.read_bytes())
    end = raw.rfind(b"PK\x05\x06")  # the last item's end-of-central-directory record
    raw[end : end + 4] = b"XXXX"
    data.write_bytes(bytes(raw))
    result = CliRunner().invoke(cli, ["inspect", str(folder), "--stats"])
    assert result.exit_code == 2, result.output
    assert "__0_0.distcp" in result.output and "Traceback" not in result.output


def test_hostile_metadata_exit_2_and_not_run(bert_dcp, tmp_path):
    sentinel = tmp_path / "ran"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {sentinel}",))

    folder = tmp_path / "evil"
    shutil.copytree(bert_dcp, folder)
    real = pickle.loads((folder / ".metadata").read_bytes())
    (folder / ".metadata").write_bytes(pickle.dumps({"state_dict_metadata": real, "x": Payload()}))
    for args in (["inspect", str(folder)], ["inspect", str(folder), "--format", "dcp"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "system" in result.output and "allow-list" in result.output
    assert not sentinel.exists()
    pickle.loads((folder / ".metadata").read_bytes())  # what torch's FileSystemReader does: the payload is live
    assert sentinel.exists()


def test_metadata_naming_a_missing_data_file_is_exit_2(bert_dcp, tmp_path):
    folder = tmp_path / "lost"
    shutil.copytree(bert_dcp, folder)
    (folder / "__0_0.distcp").unlink()
    result = CliRunner().invoke(cli, ["inspect", str(folder)])
    assert result.exit_code == 2, result.output
    assert "__0_0.distcp" in result.output and "Traceback" not in result.output
