"""`bridge unused --ddp`: let DistributedDataParallel itself say whether it objects.

Two CPU processes (gloo backend, 127.0.0.1 only) each build the model from the
same ``FILE.py:FACTORY`` spec (a string: the children import it themselves; a factory that takes
``rank``/``world_size`` builds each rank's own data), wrap it in
``DistributedDataParallel(find_unused_parameters=False)`` and run a few forward+backward steps (step i on
batch i of an iterable of batches).  The result says whether DDP raised and with what
message ("Expected to have finished reduction in the prior iteration ...").

Run as ``python -m pt_side.unused.ddp SPEC RANK WORLD PORT OUT.json STEPS``
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
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ddp_check(
    spec: str, *, steps: int = 2, world_size: int = 2, timeout: float = DEFAULT_TIMEOUT_S
) -> dict[str, Any]:
    """Run the DDP confirmation; returns ``{"raised", "message", "error_kind", "steps", "world_size", ...}``.

    ``error_kind`` is ``"ddp"`` when DDP raised in training, ``"setup"`` when the
    processes could not be started or connected (then nothing is known), ``"timeout"``
    when they did not finish in ``timeout`` seconds (ranks waiting on each other is
    itself a symptom of parameters used on one rank only), ``None`` when all went well.
    """
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
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result: dict[str, Any] = {
        "world_size": world_size,
        "steps": steps,
        "backend": "gloo",
        "find_unused_parameters": False,
    }
    with tempfile.TemporaryDirectory(prefix="bridge-ddp-") as tmp:
        outs = [Path(tmp) / f"rank{r}.json" for r in range(world_size)]
        logs = [Path(tmp) / f"rank{r}.log" for r in range(world_size)]
        procs = []
        try:
            for r in range(world_size):
                with open(logs[r], "wb") as log:
                    procs.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "pt_side.unused.ddp",
                                spec,
                                str(r),
                                str(world_size),
                                str(port),
                                str(outs[r]),
                                str(steps),
                            ],
                            env=env,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            cwd=os.getcwd(),
                        )
                    )
        except OSError as e:
            for p in procs:
                p.kill()
            return {**result, "raised": False, "error_kind": "setup", "message": f"cannot start processes: {e}"}
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
            if outs[r].is_file():
                ranks.append(json.loads(outs[r].read_text()))
            else:
                tail = logs[r].read_text(errors="replace")[-2000:] if logs[r].is_file() else ""
                ranks.append({"rank": r, "status": "no_result", "log": tail})
    result["ranks"] = ranks
    raised = [x for x in ranks if x.get("status") == "raised"]
    if raised:
        return {
            **result,
            "raised": True,
            "error_kind": "ddp",
            "message": raised[0]["message"],
            "step": raised[0].get("step"),
        }
    setup = [x for x in ranks if x.get("status") == "setup_failed"]
    if setup:
        return {**result, "raised": False, "error_kind": "setup", "message": setup[0]["message"]}
    if timed_out:
        return {
            **result,
            "raised": False,
            "error_kind": "timeout",
            "message": f"the {world_size} processes did not finish in {timeout:g}s (ranks may be waiting on "
            "each other's gradients: parameters used on some ranks only)",
        }
    missing = [x for x in ranks if x.get("status") != "ok"]
    if missing:
        return {
            **result,
            "raised": False,
            "error_kind": "setup",
            "message": "a process ended without a result: " + missing[0].get("log", "")[-500:],
        }
    return {**result, "raised": False, "error_kind": None, "message": None}


def _child(spec: str, rank: int, world_size: int, port: int, out: Path, steps: int) -> None:
    from datetime import timedelta

    def write(**data: Any) -> None:
        out.write_text(json.dumps({"rank": rank, **data}))

    try:
        import torch
        import torch.distributed as dist

        from bridge.core.factory import call_factory
        from pt_side.unused.trace import batch_list, call_model, compute_loss

        torch.manual_seed(0)
        dist.init_process_group(
            "gloo",
            init_method=f"tcp://127.0.0.1:{port}",
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=60),
        )
        model, batch, loss_fn = call_factory(spec, rank=rank, world_size=world_size)
        batches = batch_list(batch, steps)
        ddp = torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=False)
    except Exception as e:  # report, do not hang the parent
        write(status="setup_failed", message=f"{type(e).__name__}: {e}")
        return
    for step in range(steps):
        batch = batches[step % len(batches)]
        try:
            output = call_model(ddp, batch)
            loss = compute_loss(output, batch, loss_fn)
            if loss is not None and loss.requires_grad:
                loss.backward()
        except RuntimeError as e:
            write(status="raised", step=step, message=str(e))
            return
    write(status="ok")
    try:
        dist.barrier()
        dist.destroy_process_group()
    except Exception:  # noqa: S110 - the verdict is written already
        pass


if __name__ == "__main__":
    _spec, _rank, _world, _port, _out, _steps = sys.argv[1:7]
    _child(_spec, int(_rank), int(_world), int(_port), Path(_out), int(_steps))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown: a rank that raised may hold gloo threads
