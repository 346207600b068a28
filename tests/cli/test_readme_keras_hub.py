"""README's two KerasHub questions answered by commands that run as written: each bullet's `bridge convert` and
`bridge verify`, on a tiny model the test makes with the library the question starts from, in a fresh directory,
each exiting 0 with the forward compared (one on KerasHub's torch backend, the other on TensorFlow's)."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_readme import _run
from tests.conftest import REPO

pytestmark = pytest.mark.slow  # two subprocess conversions with forwards: over ~5 s on 2 cores

SECTION = "## Questions people ask"
TO_TRANSFORMERS = "How do I serve my KerasHub model with transformers (or vLLM)?"
TO_KERAS_HUB = "How do I get a transformers model into KerasHub?"


def _commands(question: str) -> list[list[str]]:
    """The bullet's `bridge ...` spans, in order (a span README wraps over two lines is one command)."""
    section = (REPO / "README.md").read_text().split(SECTION, 1)[1].split("\n## ", 1)[0]
    bullet = section.split(f"**{question}**", 1)[1].split("\n- **", 1)[0]
    spans = re.findall(r"`([^`]+)`", bullet)
    return [shlex.split(span) for span in spans if span.startswith("bridge ")]


@pytest.fixture(scope="module")
def keras_hub(torch):
    return pytest.importorskip("keras_hub")


def _run_all(commands: list[list[str]], cwd: Path, backend: str) -> str:
    """Each command as written, in order; the verify's output."""
    assert [c[1] for c in commands] == ["convert", "verify"]
    for command in commands:
        done = _run([sys.executable, "-m", "bridge", *command[1:]], cwd, {"KERAS_BACKEND": backend})
        assert done.returncode == 0, f"{shlex.join(command)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _passed_with_forward(stdout: str, backend: str) -> None:
    assert "verdict: PASS" in stdout and f"({backend} backend)" in stdout, stdout
    assert {line.split()[1] for line in stdout.splitlines() if line.startswith("forward ")} == {
        "hidden_states",
        "logits",
    }, stdout


def test_keras_hub_model_to_transformers(keras_hub, transformers, tmp_path):
    commands = _commands(TO_TRANSFORMERS)
    source, out = commands[0][2], commands[0][commands[0].index("-o") + 1]
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=30, num_layers=2, num_query_heads=4, num_key_value_heads=2, hidden_dim=16, intermediate_dim=32
    )
    backbone.save_to_preset(str(tmp_path / source))
    _passed_with_forward(_run_all(commands, tmp_path, "torch"), "torch")
    model, info = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / out, output_loading_info=True)
    assert not any(info.values()), info


def test_transformers_model_to_keras_hub(keras_hub, transformers, tmp_path):
    commands = _commands(TO_KERAS_HUB)
    source, out = commands[0][2], commands[0][commands[0].index("-o") + 1]
    config = transformers.LlamaConfig(
        vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=32,
    )  # fmt: skip
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / source)
    _passed_with_forward(_run_all(commands, tmp_path, "tensorflow"), "tensorflow")
    task: Any = keras_hub.models.CausalLM.from_preset(str(tmp_path / out), preprocessor=None)
    assert type(task).__name__ == "LlamaCausalLM"
