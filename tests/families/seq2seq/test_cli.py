"""bertseq2seq (TF-Hub BERT encoder-decoder) modules -> transformers EncoderDecoderModel: check, convert, verify."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.commands.check import check
from tests.conftest import run_cli
from tests.families.seq2seq.hub_modules import seq2seq_variables, write_hub_module

EXTRA = "module/bert/decoder/layer_0/attention/mystery/kernel"


@pytest.fixture(scope="session")
def modules(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    root = tmp_path_factory.mktemp("seq2seq")
    return {
        "uncoupled": write_hub_module(root / "uncoupled", seq2seq_variables(coupled=False)),
        "coupled": write_hub_module(root / "coupled", seq2seq_variables(coupled=True, seed=1)),
        "extra": write_hub_module(root / "extra", seq2seq_variables(coupled=False, extra=(EXTRA,))),
        "prefix": write_hub_module(root / "prefix", seq2seq_variables(coupled=False, prefix="model/s2s", seed=2)),
        # Trained under a one-component scope, or none (plain TF1 checkpoints of the same code).
        "one": write_hub_module(root / "one", seq2seq_variables(coupled=False, prefix="bert", seed=3)),
        "one-coupled": write_hub_module(root / "one-coupled", seq2seq_variables(coupled=True, prefix="bert", seed=4)),
        "zero": write_hub_module(root / "zero", seq2seq_variables(coupled=False, prefix="", seed=5)),
    }


@pytest.fixture(scope="module")
def transformers(torch):
    pytest.importorskip("tensorflow")
    return pytest.importorskip("transformers")


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["uncoupled", "coupled"])
def test_check_explains_structure(modules, variant):
    text = run_cli("check", str(modules[variant]), "--to", "pytorch")
    assert "rules: bertseq2seq" in text and "EncoderDecoderModel" in text
    assert "prefix `module/bert/` found" in text
    assert "decoder cross-attention" in text and "encoder or decoder layers" in text
    assert ("one shared stack" in text) == (variant == "coupled")
    assert "crossattention" in text
    assert "verdict: OK" in text


def test_check_finds_any_prefix(modules):
    plan = check(modules["prefix"], to="pytorch")
    assert plan.ok and plan.pack == "bertseq2seq"
    assert any("prefix `model/s2s/` found" in n for n in plan.notes)


def test_google_bert_does_not_claim_seq2seq_names():
    from bridge.families.google_bert import pack as bert
    from bridge.families.seq2seq import pack as seq2seq

    names = list(seq2seq_variables(coupled=False))
    assert bert.PACK.claims(names) == 0.0 and seq2seq.PACK.claims(names) == 1.0
    assert (
        seq2seq.PACK.claims(
            bert.tf_layout(
                {
                    "hidden_size": 4,
                    "intermediate_size": 8,
                    "vocab_size": 10,
                    "type_vocab_size": 2,
                    "max_position_embeddings": 8,
                    "num_hidden_layers": 1,
                }
            )
        )
        == 0.0
    )


@pytest.mark.parametrize("variant", ["uncoupled", "coupled"])
def test_convert_loads_generates_and_verifies(transformers, torch, modules, variant, tmp_path):
    out = tmp_path / "out"
    text = run_cli("convert", str(modules[variant]), "--to", "pytorch", "-o", str(out))
    assert "decoder_start_token_id, pad_token_id, eos_token_id unknown" in text
    model, info = transformers.EncoderDecoderModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    assert model.config.tie_encoder_decoder == (variant == "coupled")
    assert model.config.decoder.is_decoder and model.config.decoder.add_cross_attention
    assert model.config.encoder.model_type == "bert-generation"
    assert model.decoder.lm_head.decoder.weight is model.decoder.bert.embeddings.word_embeddings.weight
    embeddings = model.decoder.bert.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, model.encoder.embeddings.word_embeddings.weight)
    if variant == "coupled":
        enc, dec = model.encoder.encoder.layer[1], model.decoder.bert.encoder.layer[1]
        assert torch.equal(enc.output.dense.weight, dec.output.dense.weight)
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.pad_token_id, cfg.eos_token_id = 2, 0, 3
    generated = model.generate(torch.tensor([[5, 6, 7, 8]]), max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 1 and generated[0, 0] == 2
    text = run_cli("verify", str(modules[variant]), str(out))
    assert "forward logits" in text and "verdict: PASS" in text


def test_unknown_variable_is_reported_and_rest_converts(transformers, modules, tmp_path):
    text = run_cli("check", str(modules["extra"]), "--to", "pytorch", code=1)
    assert EXTRA in text and "which the target does not have: not loaded" in text
    out = tmp_path / "out"
    text = run_cli("convert", str(modules["extra"]), "--to", "pytorch", "-o", str(out), "--allow-gaps", code=1)
    assert "wrote" in text and (out / "model.safetensors").is_file()
    model, info = transformers.EncoderDecoderModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    # every written value is bit-exact, but the output leaves a source variable out: verify does not say PASS
    text = run_cli("verify", str(modules["extra"]), str(out), "--no-forward", code=1)
    assert "plan: 1 gap(s)" in text and EXTRA in text and "verdict: FAIL: the output does not cover" in text


def test_check_imports_neither_torch_nor_tensorflow(modules):
    import subprocess
    import sys

    code = (
        "import sys; from bridge.commands.check import check; p = check(sys.argv[1], to='pytorch'); assert p.ok; "
        "print(sorted(m for m in ('torch', 'tensorflow', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(modules["coupled"])], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_config_file_sets_heads_while_structure_comes_from_the_checkpoint(modules, tmp_path):
    """A config.json beside a shared module decides what it states (heads); the checkpoint still tells the
    prefix and the sharing, so the shared stack is still planned for both sides."""
    import json
    import shutil

    module = tmp_path / "coupled"
    shutil.copytree(modules["coupled"], module)
    (module / "config.json").write_text(json.dumps({"num_attention_heads": 4}))
    plan = check(module, to="pytorch")
    assert plan.ok, [g.reason for g in plan.gaps]
    assert plan.target.config["num_attention_heads"] == 4 and plan.target.config["tie_encoder_decoder"] is True
    assert not any("assumed" in n for n in plan.notes)
    assert any("one shared stack" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("variant", "found"),
    [
        ("one", "prefix `bert/` found"),
        ("one-coupled", "prefix `bert/` found"),
        ("zero", "no prefix (names start at `embeddings/`)"),
    ],
)
def test_prefix_of_any_depth_is_found(modules, variant, found):
    """`bert/encoder/layer_N/...` are BERT names too: the cross-attention tells the family, whatever the depth."""
    plan = check(modules[variant], to="pytorch")
    assert plan.pack == "bertseq2seq" and plan.ok, [g.name for g in plan.gaps]
    assert any(found in n for n in plan.notes)
    assert [u.name for u in plan.unused] == ["global_step"] and plan.coverage()["source_consumed"] == 1.0
    assert plan.target.config["tie_encoder_decoder"] == (variant == "one-coupled")


def test_plain_bert_under_bert_scope_stays_google_bert():
    """The seq2seq rules match google-research names as well; without cross-attention they claim nothing."""
    from bridge.families.google_bert import pack as bert
    from bridge.families.seq2seq import pack as seq2seq

    names = list(seq2seq_variables(coupled=True, prefix="bert"))
    plain = [n for n in names if "/encdec" not in n]
    assert seq2seq.PACK.claims(plain) == 0.0 and bert.PACK.claims(plain) == 1.0
    assert seq2seq.PACK.claims(names) == 1.0 == bert.PACK.claims(names)  # the tie detection breaks by signature


@pytest.mark.parametrize("variant", ["one", "zero"])
def test_convert_and_verify_any_prefix(transformers, modules, variant, tmp_path):
    out = tmp_path / "out"
    run_cli("convert", str(modules[variant]), "--to", "pytorch", "-o", str(out))
    model, info = transformers.EncoderDecoderModel.from_pretrained(out, output_loading_info=True)
    assert not any(info.values()), info
    text = run_cli("verify", str(modules[variant]), str(out))
    assert "forward logits" in text and "verdict: PASS" in text


@pytest.mark.slow
def test_no_prefix_advice_that_would_not_match(modules):
    """Forced onto the BERT rules, a seq2seq checkpoint is all unmatched; `--add-prefix decoder.` would put the
    encoder's names into the decoder with the wrong shapes, so it is not advised."""
    text = run_cli(
        "check", str(modules["one-coupled"]), "--to", "pytorch", "--rules", "google-bert",
        "--target", "EncoderDecoderModel", code=1,
    )  # fmt: skip
    assert "suspicious:" in text and "--add-prefix" not in text and "--strip-prefix" not in text
    assert "is this the right target class or rule pack?" in text


# A Hub module's WordPiece vocabulary (assets/vocab.txt), BERT's special tokens placed as in BERT's own files.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(35)]


@pytest.fixture(scope="module")
def vocab_module(modules, tmp_path_factory) -> Path:
    import shutil

    module = tmp_path_factory.mktemp("vocab") / "module"
    shutil.copytree(modules["uncoupled"], module)
    (module / "assets").mkdir()
    (module / "assets" / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return module


def test_vocabulary_gives_the_generation_tokens(vocab_module):
    text = run_cli("check", str(vocab_module), "--to", "pytorch")
    assert (
        "generate() tokens from assets/vocab.txt: decoder_start_token_id 2 `[CLS]`, eos_token_id 3 `[SEP]`, "
        "pad_token_id 0 `[PAD]`"
    ) in text
    plan = check(vocab_module, to="pytorch")
    config = plan.target.config
    assert [VOCAB[config[k]] for k in ("decoder_start_token_id", "eos_token_id", "pad_token_id")] == [
        "[CLS]",
        "[SEP]",
        "[PAD]",
    ]


def test_converted_module_generates_as_written(transformers, torch, vocab_module, tmp_path):
    """No edit before generate(): config.json and generation_config.json carry the vocabulary's tokens."""
    import json

    out = tmp_path / "out"
    text = run_cli("convert", str(vocab_module), "--to", "pytorch", "-o", str(out))
    assert "unknown" not in text and "generate() tokens from assets/vocab.txt" in text
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation == {"decoder_start_token_id": 2, "eos_token_id": 3, "pad_token_id": 0}
    model = transformers.EncoderDecoderModel.from_pretrained(out)
    assert model.generation_config.decoder_start_token_id == 2 and model.generation_config.eos_token_id == 3
    generated = model.generate(torch.tensor([[5, 6, 7, 8]]), max_new_tokens=4, do_sample=False)
    assert generated.shape[0] == 1 and int(generated[0, 0]) == VOCAB.index("[CLS]")


def test_unusable_vocabulary_is_named(modules, tmp_path):
    import shutil

    module = tmp_path / "module"
    shutil.copytree(modules["uncoupled"], module)
    (module / "assets").mkdir()
    (module / "assets" / "vocab.txt").write_text("a\nb\nc\n")
    text = run_cli("check", str(module), "--to", "pytorch")
    assert "assets/vocab.txt has neither [CLS]/[SEP]/[PAD] nor <s>/</s>/<pad>: generate() tokens not set" in text


SENTENCEPIECE = Path(__file__).resolve().parents[2] / "fixtures" / "sentencepiece"


def test_sentencepiece_pieces_read_as_sentencepiece_lists_them():
    from bridge.core.vocab import read_vocab

    assert read_vocab(SENTENCEPIECE / "tiny.model") == (SENTENCEPIECE / "tiny.pieces.txt").read_text().splitlines()


def test_sentencepiece_model_gives_the_generation_tokens(modules, tmp_path):
    import shutil

    module = tmp_path / "module"
    shutil.copytree(modules["uncoupled"], module)
    (module / "assets").mkdir()
    shutil.copy(SENTENCEPIECE / "tiny.model", module / "assets" / "spiece.model")
    plan = check(module, to="pytorch")
    config = plan.target.config
    assert (config["decoder_start_token_id"], config["eos_token_id"], config["pad_token_id"]) == (2, 1, 0)
    assert any(
        "generate() tokens from assets/spiece.model: decoder_start_token_id 2 `<s>`, eos_token_id 1 `</s>`, "
        "pad_token_id 0 `<pad>`" in n
        for n in plan.notes
    )
