"""`bridge unused --ddp`: let DistributedDataParallel itself say whether it objects.

Two CPU processes (gloo backend, 127.0.0.1 only) each build the model from the
same ``FILE.py:FACTORY`` spec (a string: the children import it themselves; a factory that takes
``rank``/``world_size`` builds each rank's own data), wrap it in ``DistributedDataParallel`` with one
configuration (``find_unused_parameters``, ``static_graph``, and, for a model that calls
``torch.utils.checkpoint``, ``use_reentrant`` forced on or off) and run a few forward+backward steps (step i on
batch i of an iterable of batches).  The result says whether DDP raised, at which step and with what message
("Expected to have finished reduction in the prior iteration ..."), or whether the ranks hung (the timeout).

:func:`time_find_unused` runs ``find_unused_parameters=False`` then ``True`` in the same processes and gives
each one's seconds per step: what the blanket fix costs for this model.

Run as ``python -m pt_side.unused.ddp SPEC RANK WORLD PORT OUT.json STEPS [CONFIG_JSON]``
(the parent does this; it is not a user command).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 90.0
_TRANSPORT_ERRORS = ("Connection closed by peer", "Connection reset", "Gloo", "gloo", "Broken pipe", "Timed out")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(
    spec: str, steps: int, world_size: int, timeout: float, config: dict[str, Any]
) -> tuple[list[dict[str, Any]], bool, str | None]:
    """Start ``world_size`` children on one configuration; each rank's last record, whether the timeout hit, and
    why the processes could not start (``None`` when they did)."""
    port = _free_port()
    env = dict(os.environ)
    env.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
            "GLOO_SOCKET_IFNAME": env.get("GLOO_SOCKET_IFNAME", "lo"),
        }
    )
    # The children must import bridge/pt_side the way this process does.
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory(prefix="bridge-ddp-") as tmp:
        outs = [Path(tmp) / f"rank{r}.json" for r in range(world_size)]
        logs = [Path(tmp) / f"rank{r}.log" for r in range(world_size)]
        procs = []
        args = [spec, "{rank}", str(world_size), str(port), "{out}", str(steps), json.dumps(config)]
        try:
            for r in range(world_size):
                argv = [a.format(rank=r, out=outs[r]) if a in ("{rank}", "{out}") else a for a in args]
                with open(logs[r], "wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "pt_side.unused.ddp", *argv],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            cwd=os.getcwd(),
                        )
                    )
        except OSError as e:
            for p in procs:
                p.kill()
            return [], False, f"cannot start processes: {e}"
        deadline = time.monotonic() + timeout
        timed_out = False
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        ranks = []
        for r in range(world_size):
            record = json.loads(outs[r].read_text()) if outs[r].is_file() else {"rank": r, "status": "no_result"}
            if record.get("status") in ("no_result", "running") and logs[r].is_file():
                record["log"] = logs[r].read_text(errors="replace")[-2000:]
            ranks.append(record)
    return ranks, timed_out, None


def run_ddp_check(
    spec: str,
    *,
    steps: int = 2,
    world_size: int = 2,
    timeout: float = DEFAULT_TIMEOUT_S,
    find_unused_parameters: bool = False,
    static_graph: bool = False,
    reentrant: bool | None = None,
) -> dict[str, Any]:
    """Run one DDP configuration; returns ``{"raised", "message", "error_kind", "outcome", "step", ...}``.

    ``reentrant``: ``True``/``False`` forces ``torch.utils.checkpoint.checkpoint(..., use_reentrant=)`` in the
    children (the model's own choice with ``None``).  ``outcome`` is ``runs``, ``raises`` (``step``: the first
    step at which a rank raised DDP's own error, ``message`` its text) or ``hangs`` (``step``: the step the
    slowest rank was in when the ``timeout`` hit).  ``error_kind`` is ``"ddp"`` when DDP raised in training,
    ``"setup"`` when the processes could not be started or connected (then nothing is known, and ``outcome`` is
    ``None``), ``"timeout"`` when they did not finish in ``timeout`` seconds, ``None`` when all went well.
    """
    config = {"find_unused_parameters": find_unused_parameters, "static_graph": static_graph, "reentrant": reentrant}
    result: dict[str, Any] = {"world_size": world_size, "steps": steps, "backend": "gloo", **config}
    ranks, timed_out, failed = _launch(spec, steps, world_size, timeout, config)
    if failed is not None:
        return {**result, "raised": False, "error_kind": "setup", "outcome": None, "message": failed}
    result["ranks"] = ranks
    raised = [x for x in ranks if x.get("status") == "raised"]
    own = [x for x in raised if not any(t in x["message"] for t in _TRANSPORT_ERRORS)] or raised
    if own:
        first = min(own, key=lambda x: int(x.get("step", 0)))
        return {
            **result,
            "raised": True,
            "error_kind": "ddp",
            "outcome": "raises",
            "message": first["message"],
            "step": first.get("step"),
            "rank": first.get("rank"),
        }
    setup = [x for x in ranks if x.get("status") == "setup_failed"]
    if setup:
        return {**result, "raised": False, "error_kind": "setup", "outcome": None, "message": setup[0]["message"]}
    if timed_out:
        stuck = [x for x in ranks if x.get("status") != "ok"]
        return {
            **result,
            "raised": False,
            "error_kind": "timeout",
            "outcome": "hangs",
            "step": min((int(x.get("step", 0)) for x in stuck), default=None),
            "message": f"the {world_size} processes did not finish in {timeout:g}s (ranks may be waiting on "
            "each other's gradients: parameters used on some ranks only)",
        }
    missing = [x for x in ranks if x.get("status") != "ok"]
    if missing:
        return {
            **result,
            "raised": False,
            "error_kind": "setup",
            "outcome": None,
            "message": "a process ended without a result: " + missing[0].get("log", "")[-500:],
        }
    return {**result, "raised": False, "error_kind": None, "outcome": "runs", "message": None, "step": None}


def time_find_unused(
    spec: str,
    *,
    steps: int = 10,
    world_size: int = 2,
    timeout: float = DEFAULT_TIMEOUT_S,
    touch_all: bool = False,
    reentrant: bool | None = None,
) -> dict[str, Any]:
    """Seconds per step with ``find_unused_parameters=False`` and ``True`` (in the same processes: each twice,
    one warm-up step then ``steps`` timed steps; the median step), and their ratio.

    ``touch_all``: add the zero-weighted term that touches every trainable parameter to the loss in the
    ``False`` run (the code fix), so it runs when some parameters miss a step.  The slowest rank's time counts.
    """
    config = {"timing": True, "touch_all": touch_all, "reentrant": reentrant}
    out: dict[str, Any] = {"steps": steps, "world_size": world_size, "touch_all": touch_all}
    ranks, timed_out, failed = _launch(spec, steps, world_size, timeout, config)
    times = [x["seconds_per_step"] for x in ranks if x.get("status") == "ok" and x.get("seconds_per_step")]
    if failed or timed_out or len(times) != world_size:
        why = failed or ("timeout" if timed_out else next((x.get("message") for x in ranks if "message" in x), None))
        return {**out, "seconds_per_step": None, "ratio": None, "message": why}
    per = {key: max(t[key] for t in times) for key in ("false", "true")}
    return {**out, "seconds_per_step": per, "ratio": per["true"] / per["false"] if per["false"] > 0 else None}


def _force_reentrant(use_reentrant: bool) -> None:
    """Make every ``torch.utils.checkpoint.checkpoint`` call (imported before or after) use ``use_reentrant``."""
    import torch.utils.checkpoint as ckpt

    original = ckpt.checkpoint

    def checkpoint(function: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["use_reentrant"] = use_reentrant
        return original(function, *args, **kwargs)

    ckpt.checkpoint = checkpoint


def _step(ddp: Any, batch: Any, loss_fn: Callable[..., Any] | None, extra: Callable[[], Any] | None) -> None:
    from pt_side.unused.trace import call_model, compute_loss

    output = call_model(ddp, batch)
    loss = compute_loss(output, batch, loss_fn)
    if loss is not None and extra is not None:
        loss = loss + extra()
    if loss is not None and loss.requires_grad:
        loss.backward()


def _child(spec: str, rank: int, world_size: int, port: int, out: Path, steps: int, config: dict[str, Any]) -> None:
    from datetime import timedelta

    def write(**data: Any) -> None:
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rank": rank, **data}))
        tmp.replace(out)

    try:
        import torch
        import torch.distributed as dist

        if config.get("reentrant") is not None:  # before the user's file is imported
            _force_reentrant(bool(config["reentrant"]))

        from bridge.core.factory import call_factory
        from pt_side.unused.trace import batch_list

        torch.manual_seed(0)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=60),
        )
        if config.get("timing"):
            write(status="ok", seconds_per_step=_timed(spec, rank, world_size, steps, bool(config.get("touch_all"))))
            _close()
            return
        model, batch, loss_fn = call_factory(spec, rank=rank, world_size=world_size)
        batches = batch_list(batch, steps)
        ddp = torch.nn.parallel.DistributedDataParallel(
            model,
            find_unused_parameters=bool(config.get("find_unused_parameters")),
            static_graph=bool(config.get("static_graph")),
        )
    except Exception as e:  # report, do not hang the parent
        write(status="setup_failed", message=f"{type(e).__name__}: {e}")
        return
    for step in range(steps):
        write(status="running", step=step)
        try:
            _step(ddp, batches[step % len(batches)], loss_fn, None)
        except RuntimeError as e:
            write(status="raised", step=step, message=str(e))
            return
    write(status="ok")
    _close()


def _timed(spec: str, rank: int, world_size: int, steps: int, touch_all: bool) -> dict[str, float]:
    """Median seconds per step of ``find_unused_parameters=False`` and ``True``, each on a fresh model from the
    factory, measured in two rounds (False, True, True, False) so that warming up favours neither."""
    import statistics

    import torch

    from bridge.core.factory import call_factory
    from pt_side.unused.trace import batch_list

    samples: dict[str, list[float]] = {"false": [], "true": []}
    for find_unused in (False, True, True, False):
        torch.manual_seed(0)
        model, batch, loss_fn = call_factory(spec, rank=rank, world_size=world_size)
        batches = batch_list(batch, steps + 1)
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=find_unused)
        extra = _zero_term(model) if touch_all and not find_unused else None
        _step(ddp, batches[0], loss_fn, extra)  # warm-up (and the first step's bucket rebuild)
        for step in range(1, steps + 1):
            torch.distributed.barrier()
            start = time.perf_counter()
            _step(ddp, batches[step % len(batches)], loss_fn, extra)
            samples[str(find_unused).lower()].append(time.perf_counter() - start)
    return {key: statistics.median(values) for key, values in samples.items()}


def _zero_term(model: Any) -> Callable[[], Any]:
    """The code fix: a zero-weighted term that touches every trainable parameter, added to the loss."""
    params = [p for p in model.parameters() if p.requires_grad]
    return lambda: 0.0 * sum(p.sum() for p in params)


def _close() -> None:
    import torch.distributed as dist

    try:
        dist.barrier()
        dist.destroy_process_group()
    except Exception:  # noqa: S110 - the verdict is written already
        pass


if __name__ == "__main__":
    _spec, _rank, _world, _port, _out, _steps = sys.argv[1:7]
    _config = json.loads(sys.argv[7]) if len(sys.argv) > 7 else {}
    _child(_spec, int(_rank), int(_world), int(_port), Path(_out), int(_steps), _config)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a rank that raised may hold gloo threads
