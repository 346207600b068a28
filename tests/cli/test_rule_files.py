"""`--rules FILE`: user rules (YAML, JSON, Python) go before the pack's, on a checkpoint TensorFlow wrote
with a scope the google-bert pack does not know (`bert/pool/...` instead of `bert/pooler/...`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import bridge
from bridge.cli import cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"
RULE = {"source": "bert/pool/dense/kernel", "target": "bert.pooler.dense.weight", "transform": "transpose"}
BIAS = {"source": "bert/pool/dense/(bias)", "target": "bert.pooler.dense.{1}"}


def _write(folder: Path, suffix: str, rules: list[dict[str, str]], extends: str | None = None) -> Path:
    path = folder / f"my_rules{suffix}"
    if suffix == ".py":
        lines = ["from bridge.rules import Rule", f"EXTENDS = {extends!r}", "RULES = ["]
        lines += [f"    Rule({r['source']!r}, {r['target']!r}, {r.get('transform', 'identity')!r})," for r in rules]
        path.write_text("\n".join(lines + ["]"]) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps({"extends": extends, "rules": rules}))
    else:
        body = "".join(
            f"  - source: '{r['source']}'\n    target: '{r['target']}'\n"
            + (f"    transform: {r['transform']}\n" if "transform" in r else "")
            for r in rules
        )
        path.write_text((f"extends: {extends}\n" if extends else "") + "rules:\n" + body)
    return path


def _check(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(cli, ["check", *args, "--to", "pytorch", "--target", "BertModel", "--json"])
    return result.exit_code, json.loads(result.output)


def test_without_rules_the_renamed_scope_is_a_gap(renamed):
    code, plan = _check(str(renamed))
    assert code == 1
    assert {m["name"] for m in plan["missing"]} == {"pooler.dense.weight", "pooler.dense.bias"}
    gaps = {u["name"] for u in plan["unused"] if not u["expected"]}
    assert gaps == {"bert/pool/dense/kernel", "bert/pool/dense/bias"}


@pytest.mark.parametrize("suffix", [".yaml", ".json", ".py"])
@pytest.mark.parametrize("extends", [None, "google-bert"])
def test_rule_file_fills_the_gap(renamed, tmp_path, suffix, extends):
    path = _write(tmp_path, suffix, [RULE, BIAS], extends)
    code, plan = _check(str(renamed), "--rules", str(path))
    assert code == 0, plan
    pairs = {(m["source"], m["target"], m["transform"]) for m in plan["matched"]}
    assert ("bert/pool/dense/kernel", "pooler.dense.weight", "transpose") in pairs  # `bert.` aligned away
    assert ("bert/pool/dense/bias", "pooler.dense.bias", "identity") in pairs
    assert plan["rules"] == "google-bert" and not plan["missing"]


def test_convert_and_verify_with_the_rule_file(renamed, tmp_path):
    rules = str(_write(tmp_path, ".yaml", [RULE, BIAS]))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["convert", str(renamed), "--to", "pytorch", "--target", "BertModel", "--rules", rules, "-o", str(out), "-q"],
    )
    assert result.exit_code == 0, result.output
    with bridge.load(out) as ckpt, bridge.load(renamed) as src:
        got = ckpt["pooler.dense.weight"].numpy()
        assert np.array_equal(got, src["bert/pool/dense/kernel"].numpy().T)
    verify = ["verify", str(renamed), str(out), "--rules", rules, "--no-forward", "--dropped-heads"]  # BertModel asked
    result = CliRunner().invoke(cli, verify)
    assert result.exit_code == 0, result.output
    assert "verdict: PASS (values only: no forward pass was compared)" in result.output
    assert bridge.verify(renamed, out, rules=rules, forward=False, dropped_heads=True).ok


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - source: '('\n    target: x\n", "Bad rule #1"),
        ("rules:\n  - source: a\n", "Bad rule #1"),
        ("rules:\n  - {source: a, target: b, transform: rotate}\n", "unknown transform"),
        ("extends: [1]\nrules: []\n", "`extends` must be a pack name"),
        ("rule: []\n", "Unknown keys in rule file"),
        ("rules: [\n", "Unreadable rule file"),
    ],
)
def test_bad_rule_file_is_one_paragraph_naming_the_file(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE), "--to", "pytorch", "--rules", str(path)])
    assert result.exit_code == 2
    assert message in result.output and str(path) in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "body",
    [
        "from bridge.rules import Rule\nRULES = [Rule('bert/(unclosed', 'x')]\n",
        "import dataclasses\nfrom bridge.rules import Rule\nfrom bridge.families.google_bert.pack import PACK as B\n"
        "PACK = dataclasses.replace(B.with_rules((Rule('(', 'x'),)), name='mine')\n",
    ],
    ids=["rules", "pack"],
)
def test_python_rule_file_with_a_bad_regex_is_refused_at_load(tmp_path, body):
    """Rules compile lazily (the packs' thousands of regexes cost nothing unless tried): a user's file is compiled
    whole when it is loaded, so its bad pattern is a usage error before any work, never a crash mid-run."""
    path = tmp_path / "bad.py"
    path.write_text(body)
    result = CliRunner().invoke(cli, ["check", str(EXAMPLE), "--to", "pytorch", "--rules", str(path)])
    assert result.exit_code == 2, result.output
    assert "Bad rule #1" in result.output and "unterminated subpattern" in result.output
    assert "Traceback" not in result.output


def test_python_rule_file_may_define_a_whole_pack(tmp_path):
    path = tmp_path / "pack.py"
    path.write_text(
        "from bridge.rules import Rule, RulePack\n"
        "from bridge.families.google_bert.pack import PACK as BERT\n"
        "import dataclasses\n"
        "PACK = dataclasses.replace(BERT.with_rules((Rule('nothing', 'x'),) + BERT.matching.rules), name='my-bert')\n"
    )
    code, plan = _check(str(EXAMPLE), "--rules", str(path))
    assert code == 0 and plan["rules"] == "my-bert"
