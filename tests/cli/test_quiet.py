"""The frameworks' start-up chatter stays out of bridge's output; real errors do not (subprocesses: descriptor 2 as a
user's terminal sees it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "tiny-bert"


def _bridge(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY", "BRIDGE_DEBUG", "PYTHONWARNINGS"):
        env.pop(key, None)  # as a user's shell has them: unset
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600
    )


def test_verify_after_convert_has_a_clean_stderr(torch, tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("transformers")
    out = tmp_path / "tiny-bert-pytorch"
    done = _bridge("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out))
    assert done.returncode == 0, done.stderr
    done = _bridge("verify", str(EXAMPLE), str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verdict: PASS" in done.stdout and "forward mlm_logits" in done.stdout
    assert done.stderr == ""
    # --debug shows everything the frameworks say (TensorFlow's start-up lines among it on this machine).
    debug = _bridge("verify", str(EXAMPLE), str(out), "--debug")
    assert debug.returncode == 0 and "verdict: PASS" in debug.stdout


def test_errors_still_reach_stderr(tmp_path):
    done = _bridge("verify", str(EXAMPLE), str(tmp_path / "missing"))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "missing" in done.stderr


_PROBE = r"""
import os, sys, warnings
from bridge.quiet import quiet_frameworks
with quiet_frameworks():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
    os.write(2, b"I0000 00:00:1795989095.023704   23550 port.cc:153] oneDNN custom operations are on.\n")
    os.write(2, b"W0000 00:00:1795989095.024573   23550 cudart_stub.cc:31] Could not find cuda drivers\n")
    os.write(2, b"E0000 00:00:1795989099.801896   23550 cuda_platform.cc:52] failed call to cuInit: INTERNAL\n")
    os.write(2, b"E0000 00:00:1795989099.801896   23550 bundle.cc:9] Data loss: corrupted record\n")
    os.write(2, b"\rconverting 50%")
    warnings.warn("an API goes away", FutureWarning)
    warnings.warn("your tensor is odd", UserWarning)
    print("plain stderr line", file=sys.stderr)
print("after", file=sys.stderr)
"""


def test_filter_drops_exactly_the_start_up_lines():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BRIDGE_DEBUG", None)
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    err = done.stderr
    assert "absl::InitializeLog" not in err and "oneDNN" not in err and "cuda drivers" not in err
    assert "cuInit" not in err and "FutureWarning" not in err
    assert "Data loss: corrupted record" in err  # an error line that is not start-up noise stays
    assert "converting 50%" in err and "UserWarning: your tensor is odd" in err
    assert "plain stderr line" in err and err.endswith("after\n")
