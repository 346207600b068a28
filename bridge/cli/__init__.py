"""The ``bridge`` command line: thin shells over the commands (:mod:`bridge.commands`).

Each command imports its implementation inside the callback, so ``bridge --help`` loads click and this package
only.  The plan options are declared once (:func:`~bridge.cli.options.plan_request_options`, one
:class:`~bridge.commands.plan_request.PlanRequest`), every report goes out through one helper
(:func:`~bridge.cli.options.emit`: text or ``--json``, then its exit code), and errors through one boundary
(:mod:`bridge.cli.boundary`).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from bridge.cli.boundary import DEBUG_HELP, INTERNAL_ERROR, BridgeGroup, set_debug
from bridge.cli.options import emit, parse_size, plan_request_options, progress_bar
from bridge.core.errors import BridgeError
from bridge.core.invoked import command_name
from bridge.quiet import bar_file, stderr_is_terminal

if TYPE_CHECKING:
    from bridge.commands.plan_request import PlanRequest


@click.group(cls=BridgeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ckpt-bridge", prog_name="ckpt-bridge")
@click.option("--debug", is_flag=True, expose_value=False, callback=set_debug, help=DEBUG_HELP)
def cli() -> None:
    """TensorFlow/Keras <-> PyTorch checkpoints: look inside without the frameworks,
    plan the mapping before a byte moves, convert both ways, prove the result,
    and find the weights a model never uses.

    \b
    The main job (a google-research BERT checkpoint to transformers):
      bridge inspect uncased_L-12_H-768_A-12/                # scopes, Adam slots, global_step
      bridge check   uncased_L-12_H-768_A-12/ --to pytorch   # the plan and its verdict
      bridge convert uncased_L-12_H-768_A-12/ --to pytorch -o bert-torch/
      bridge verify  uncased_L-12_H-768_A-12/ bert-torch/    # values bit-exact, forward within 1e-5

    \b
    More:
      bridge inspect model.safetensors --json                # one JSON object for scripts
      bridge check model.keras --to pytorch --target twin.py:build_twin
      bridge unused train.py:build_model                     # unused parameters, by name and why
      bridge formats                                         # what can be read
      bridge layouts                                         # TF layout names, per direction
    bridge lora my.lora.h5 --base my_preset/ -o adapter/   # a KerasHub LoRA file <-> a PEFT adapter

    \b
    Exit codes: 0 success, 1 the report has gaps, 2 bad input (the message names
    the file, the tensor and the fix), 3 an internal error (--debug shows it).
    --debug goes before or after the subcommand: bridge check X --to pytorch --debug
    """


@cli.command()
@click.argument("path", type=click.Path(path_type=str))
@click.option("--format", "format_name", metavar="NAME", help="Skip detection; see `bridge formats`.")
@click.option("--filter", "pattern", metavar="REGEX", help="Keep tensors whose name (or readable path) matches.")
@click.option("--depth", default=3, show_default=True, help="Scope components per row of the scope table.")
@click.option("--all", "every_tensor", is_flag=True, help="List every tensor instead of scopes.")
@click.option("--stats", is_flag=True, help="Read every value: min/max/mean/std, NaN/Inf counts (checks checksums).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def inspect(
    path: str,
    format_name: str | None,
    pattern: str | None,
    depth: int,
    every_tensor: bool,
    stats: bool,
    as_json: bool,
) -> None:
    """Show what a checkpoint holds: tensors by scope, optimizer slots apart.

    PATH is a file, a directory, or a TF checkpoint prefix (model.ckpt-1000).
    Only the index is read unless --stats is given. Names are exactly the keys
    the owning framework lists (tf.train.list_variables, the h5 dataset path,
    the state-dict key).

    PATH (and SOURCE of check, convert and verify) may be a gs://, s3://,
    https:// or other fsspec URL, read with range requests: the index alone
    here, each tensor once in convert (pip install 'ckpt-bridge[remote]').
    Over http(s) a URL names a file or a prefix; a folder ends with '/'.

    \b
    Examples:
      bridge inspect uncased_L-12_H-768_A-12/
      bridge inspect ckpt-5 --filter 'OPTIMIZER_SLOT' --all
      bridge inspect pytorch_model.bin --json | jq '.tensors[].name'
      bridge inspect gs://bucket/bert/model.ckpt-1000000
    """
    from functools import partial

    from bridge.api import load
    from bridge.commands.inspect import inspect_checkpoint
    from bridge.report import render_inspect

    with load(path, format=format_name) as ckpt:
        report = inspect_checkpoint(
            ckpt, pattern=pattern, depth=depth, stats=stats, progress=progress_bar("reading values")
        )
        emit(report, as_json, partial(render_inspect, every_tensor=every_tensor))


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@plan_request_options(source_format=("--format", "--source-format"))
@click.option("-v", "--verbose", is_flag=True, help="Every row instead of folded scopes.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: matched, unused, missing, mismatched, tied.")
def check(source: str, request: PlanRequest, verbose: bool, as_json: bool) -> None:
    """Plan a conversion without moving a byte: which source tensor becomes which
    target tensor and how, what is left over and why, what the target still lacks.

    Only metadata is read. Exit code 0 when every target tensor that needs a
    source has one and nothing is mismatched, 1 when the plan has gaps, 2 on bad input.

    \b
    Examples:
      bridge check uncased_L-12_H-768_A-12/ --to pytorch
      bridge check bert_model.ckpt --to pytorch --target BertModel --json
      bridge check pytorch_model.bin --to tensorflow --target google-bert
      bridge check ckpt/ --to pytorch --map 'bert/emb/(.*)=bert.embeddings.{1}.weight'
      bridge check ckpt/ --to pytorch --rules my_rules.yaml

    \b
    A rule file (YAML/JSON; or .py defining RULES or a whole PACK):
      extends: google-bert                 # optional; default: detected
      rules:
        - source: 'bert/pool/dense/kernel' # regex, matched in full
          target: 'bert.pooler.dense.weight'
          transform: transpose             # identity, permute(3,2,0,1), reshape(...)
    """
    from bridge.commands.check import run_check
    from bridge.report import render_plan

    emit(run_check(source, request), as_json, lambda plan: render_plan(plan, verbose=verbose))


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.option("-o", "--out", "out", type=click.Path(path_type=str), required=True, help="Output directory (new).")
@plan_request_options(source_format=("--source-format",))
@click.option(
    "--format",
    "out_format",
    default="safetensors",
    show_default=True,
    help="Output format. PyTorch: safetensors, bin, or dcp (a torch.distributed.checkpoint directory that "
    "torch.distributed.checkpoint.load reads on any number of ranks). TensorFlow: the --target layout's own files "
    "(google-bert: bert_model.ckpt; hf-tf: tf_model.h5).",
)
@click.option(
    "--max-shard-size",
    metavar="SIZE",
    help="Cut the weights into files of at most SIZE (500MB, 2GB, 1GiB): safetensors and hf-tf's tf_model.h5 as "
    "transformers shards them (with an index.json), a TF1 checkpoint as N .data files. A tensor is never split: one "
    "larger than SIZE gets a file of its own.",
)
@click.option(
    "--dtype",
    type=click.Choice(["float16", "bfloat16", "float32"]),
    help="Cast floating tensors, rounding to nearest, ties to even (IEEE 754, as torch's .to() and numpy do from "
    "float32; once from the exact value). The report (and --json 'casts') counts the tensors and bytes cast and "
    "the values that overflowed to inf or became subnormal or zero.",
)
@click.option("--keep-optimizer", is_flag=True, help="Also write optimizer state, apart (optimizer.safetensors).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    metavar="N",
    help="Threads reading, checksumming, transposing and casting the next tensors while one is written (default: "
    "every CPU this process may use). The output bytes are the same for any N; memory is about N+1 times the "
    "largest tensor.",
)
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--allow-gaps", is_flag=True, help="Write even when the plan has gaps (still reported, exit 1).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: files, bytes, the plan.")
def convert(
    source: str,
    request: PlanRequest,
    out: str,
    out_format: str,
    max_shard_size: str | None,
    dtype: str | None,
    keep_optimizer: bool,
    workers: int | None,
    force: bool,
    allow_gaps: bool,
    quiet: bool,
    as_json: bool,
) -> None:
    """Convert a checkpoint to the other side, after checking the plan.

    Tensors stream one at a time from the memory-mapped source into OUT, which
    appears only when complete (an interrupted run leaves nothing). Optimizer
    state is dropped unless --keep-optimizer. Refuses a plan with gaps (exit 1;
    see `bridge check`) and an existing OUT without --force (exit 2).

    \b
    Examples:
      bridge convert uncased_L-12_H-768_A-12/ --to pytorch -o bert-base-torch/
      bridge convert bert_model.ckpt --to pytorch --target BertModel -o out/ --max-shard-size 2GB
      bridge convert hf-bert/ --to tensorflow --target google-bert -o bert-tf/
      bridge convert hf-bert/ --to tensorflow --target hf-tf -o bert-tf-hf/
      bridge convert electra/ --to tensorflow -o electra-tf/   # discriminator/ + generator/ in one
      bridge convert ddp/pytorch_model.bin --to pytorch --strip-prefix module. -o clean/
      bridge convert weights.dat --source-format torch --to tensorflow -o bert-tf/
    bridge convert https://host/bert/model.ckpt-1000000 --to pytorch -o bert-torch/

    Then run the `next: bridge verify ...` line it prints: SOURCE, OUT and every
    option that shaped the plan.

    Two networks into one TF checkpoint, where the layout stores both (`bridge
    formats`: companion-folder): SOURCE is a folder holding each network's
    save_pretrained output in the subfolders the layout names. ELECTRA:
    discriminator/ (ElectraForPreTraining) and generator/ (ElectraForMaskedLM)
    become google-research's pretraining checkpoint, the shared embeddings
    stored once; `bridge verify SOURCE OUT` compares both networks' values.

    \b
    Under torchrun, the ranks share the work (torch's gloo group, no GPU):
      torchrun --nproc_per_node 4 -m bridge convert ckpt/ --to pytorch -o out/ --max-shard-size 2GB
    Each rank writes the safetensors shards it owns (shard k: rank k mod N; one
    file, bin and TF outputs: rank 0); rank 0 writes the index and configs,
    prints the report ("ranks": N in --json) and renames OUT once every rank is
    done; the bytes equal a single process's. An error on any rank stops all
    with its exit code (a rank stuck past BRIDGE_RANK_TIMEOUT seconds, default
    1800, too). With several nodes, OUT must be on a filesystem they all share.
    """
    from bridge.commands.convert import check_command, run_convert, verify_command
    from bridge.ranks import joined
    from bridge.report import render_convert

    bars: list[Any] = []

    def progress(done: int, total: int) -> None:
        if not bars:
            bars.append(click.progressbar(length=total, label="converting", file=bar_file(), show_percent=True))
        bars[0].update(done - bars[0].pos)

    with joined() as group:
        lead = group is None or group.rank == 0  # under torchrun, rank 0 alone speaks
        show = group is None and not quiet and not as_json and stderr_is_terminal()  # a rank sees its shards only
        try:
            result = run_convert(
                source,
                request,
                out=out,
                out_format=out_format,
                max_shard_size=parse_size(max_shard_size),
                keep_optimizer=keep_optimizer,
                dtype=dtype,
                force=force,
                allow_gaps=allow_gaps,
                on_progress=progress if show else None,
                workers=workers,
                group=group,
            )
        except Exception as e:
            if lead:
                raise
            sys.exit(e.exit_code if isinstance(e, BridgeError) else INTERNAL_ERROR)  # rank 0 reports it
    if not lead:
        sys.exit(result.exit_code)
    if bars:
        bars[0].render_finish()
    check_line, verify_line = check_command(source, request), verify_command(source, request, result)
    emit(result, as_json, lambda r: render_convert(r, check_command=check_line, verify_command=verify_line))


@cli.command()
@click.argument("source", type=click.Path(path_type=str))
@click.argument("out", type=click.Path(path_type=str))
@click.option("--atol", default=1e-5, show_default=True, help="Largest allowed absolute difference of outputs.")
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--seq-len", default=16, show_default=True, help="Sequence length of the random inputs.")
@click.option("--no-forward", is_flag=True, help="Compare tensor values only.")
@plan_request_options(
    side=False,
    target=(
        "FILE.py:FACTORY",
        "Keras pack: the model on OUT's side (the PyTorch twin or the Keras model), as for convert. "
        "A class, layout or reference given to convert is implied by OUT: its names are the target.",
    ),
)
@click.option(
    "--source-model",
    metavar="FILE.py:FACTORY",
    help="Keras pack: the model on SOURCE's side when the file cannot build it (weights-only).",
)
@click.option(
    "--dropped-heads",
    is_flag=True,
    help="OUT is a class without some of SOURCE's heads, asked for on purpose (convert --target CLASS): "
    "list those heads as dropped instead of failing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def verify(
    source: str,
    out: str,
    request: PlanRequest,
    atol: float,
    seed: int,
    seq_len: int,
    no_forward: bool,
    source_model: str | None,
    dropped_heads: bool,
    as_json: bool,
) -> None:
    """Prove a conversion: every tensor value bit-exact after its transform, and,
    where the model exists on both sides, a forward pass on the same seeded
    inputs agreeing within --atol. Exit code 0 pass, 1 fail, 2 bad input.

    \b
    Examples:
      bridge verify uncased_L-12_H-768_A-12/ bert-base-torch/
      bridge verify hf-bert/ bert-tf/ --atol 1e-4 --json
      bridge verify model.keras torch-out/ --target twin.py:build
      bridge verify ddp/pytorch_model.bin clean/ --strip-prefix module.

    Give it the options convert was given (convert's `next:` line does).
    """
    from bridge.commands.verify import run_verify
    from bridge.report import render_verify

    report = run_verify(
        source,
        out,
        request,
        atol=atol,
        seed=seed,
        seq_len=seq_len,
        forward=not no_forward,
        source_model=source_model,
        dropped_heads=dropped_heads,
    )
    emit(report, as_json, render_verify)


@cli.command()
@click.argument("target", metavar="FILE.py:FACTORY | GRAPH.meta")
@click.option(
    "--loss",
    "losses",
    multiple=True,
    metavar="TENSOR",
    help="TF1 graph: the loss tensor gradients flow from (loss:0). Repeatable.",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="TENSOR",
    help="TF1 graph: an output tensor, treated like a loss. Repeatable.",
)
@click.option(
    "--checkpoint",
    metavar="CKPT",
    type=click.Path(path_type=str),
    help="Compare CKPT with the factory's model: leftovers, optimizer state, missing variables.",
)
@click.option(
    "--steps",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Forward+backward runs; >1 finds parameters used in some steps only (layer-drop).",
)
@click.option("--ddp", is_flag=True, help="PyTorch: confirm with DistributedDataParallel on 2 gloo CPU processes.")
@click.option(
    "--cost",
    is_flag=True,
    help="PyTorch: time a DDP step with find_unused_parameters=True vs False (2 gloo CPU processes).",
)
@click.option("--seed", default=0, show_default=True, help="Seed set before the runs.")
@click.option("-v", "--verbose", is_flag=True, help="List every parameter under its scope.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: unused (name, scope, kind, hint), summary.")
def unused(
    target: str,
    losses: tuple[str, ...],
    outputs: tuple[str, ...],
    checkpoint: str | None,
    steps: int,
    ddp: bool,
    cost: bool,
    seed: int,
    verbose: bool,
    as_json: bool,
) -> None:
    """Find the parameters/variables a model never uses, say why and how to fix it.

    FACTORY in FILE.py is called with no arguments and returns (model, batch) or
    (model, batch, loss_fn); loss_fn(output, batch) gives the loss (default: the
    sum of every floating output). The framework follows from the model (a
    torch.nn.Module, a Keras model or a tf.Module). Kinds: never_read (never
    enters an op), no_gradient (read, but the loss does not depend on it),
    frozen (not trainable: harmless), sometimes (in some of --steps runs only).

    A TF1 training graph (GRAPH.meta, written by tf.compat.v1.train.Saver) is read
    without running it: trainable variables outside the backward closure of
    --loss/--output. With --checkpoint, the factory's model is compared with a
    checkpoint instead: what a restore would leave behind (model leftovers vs
    optimizer state) and which variables would keep their initial values.
    Exit code 0 when nothing trainable is unused (or nothing the model needs is
    lost), 1 when something is, 2 on bad input.

    \b
    Examples:
      bridge unused train.py:build_model
      bridge unused train.py:build_model --steps 8 --json
      bridge unused train.py:build_model --ddp   # shows DDP's own error beside the report
      bridge unused train.py:build_model --ddp --cost   # + what find_unused_parameters=True costs per step
      bridge unused model.ckpt-1000.meta --loss total_loss:0
      bridge unused train.py:build_model --checkpoint ckpt/ckpt-3
    """
    from bridge.core.unused.restore import RestoreReport
    from bridge.unused import run_unused
    from bridge.unused.render import render_restore, render_unused

    report = run_unused(
        target, tensors=losses + outputs, checkpoint=checkpoint, steps=steps, ddp=ddp, cost=cost, seed=seed
    )
    render = render_restore if isinstance(report, RestoreReport) else render_unused
    emit(report, as_json, lambda r: render(r, verbose=verbose))


@cli.command("lora")
@click.argument("source", type=click.Path(path_type=str))
@click.option(
    "--base",
    type=click.Path(path_type=str),
    required=True,
    help="The model the adapter was trained on: its KerasHub preset or its transformers directory.",
)
@click.option("-o", "--out", "out", type=click.Path(path_type=str), required=True, help="Output (new).")
@click.option("--force", is_flag=True, help="Replace OUT if it exists.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def lora_command(source: str, base: str, out: str, force: bool, as_json: bool) -> None:
    """Convert a LoRA adapter: KerasHub's save_lora_weights file <-> a PEFT adapter directory.

    SOURCE is a `*.lora.h5` (written as a PEFT directory, adapter_config.json + adapter_model.safetensors)
    or a PEFT adapter directory (written as OUT, which must end in .lora.h5). KerasHub keys its layers by
    index, so --base names them (the families whose layer order bridge knows: docs/guide.md). Prints how to
    load the result.

    \b
      bridge lora my.lora.h5 --base my_preset/ -o my-adapter/
      bridge lora my-adapter/ --base my_preset/ -o back.lora.h5
    """
    from pathlib import Path

    from bridge.commands.lora import run_lora

    result = run_lora(Path(source), Path(base), Path(out), force=force)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
        return
    click.echo(f"wrote {result.out}: {len(result.modules)} LoRA modules, Keras rank {result.rank}")
    click.echo(f"load it: {result.load}")


@cli.command("formats")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_formats(as_json: bool) -> None:
    """List the checkpoint formats this tool reads (names for --format)."""
    from bridge.formats import formats

    rows = formats()
    if as_json:
        payload = [{"name": f.name, "framework": f.framework, "description": f.description} for f in rows]
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(f.name) for f in rows)
    for f in rows:
        click.echo(f"{f.name:<{width}}  {f.description}")


@cli.command("layouts")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_layouts(as_json: bool) -> None:
    """List the TF layout names per direction (names for --target) and the families each converts."""
    from bridge.commands.layouts import layouts
    from bridge.report import render_layouts

    emit(layouts(), as_json, render_layouts)


def main() -> None:
    cli(prog_name=command_name())
