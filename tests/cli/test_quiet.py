"""The frameworks' start-up chatter stays out of bridge's output; real errors do not (subprocesses: descriptor 2 as a
user's terminal sees it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # over ~5 s on 2 cores: `make test-fast` leaves it out

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


def _on_a_terminal(*args: str, cwd: Path = REPO) -> tuple[int, str, str]:
    """Run `python -m bridge ARGS` with stderr on a real pseudo-terminal (stdout a pipe): exit code, stdout, and
    what the terminal showed."""
    import pty

    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY", "BRIDGE_DEBUG", "PYTHONWARNINGS"):
        env.pop(key, None)
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "bridge", *args], stdout=subprocess.PIPE, stderr=follower, cwd=cwd, env=env
    ) as child:
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            shown += chunk
        out = child.stdout.read() if child.stdout else b""
        code = child.wait(timeout=600)
    os.close(leader)
    return code, out.decode(), shown.decode(errors="replace")


def test_convert_shows_its_progress_bar_on_a_terminal(tmp_path):
    code, out, terminal = _on_a_terminal("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "o"))
    assert code == 0, out + terminal
    assert "converting" in terminal and "100%" in terminal, terminal
    assert "wrote " in out and "converting" not in out
    # not with -q, and never on a pipe (CI logs): the filter's pipe is not mistaken for the user's stderr
    code, out, terminal = _on_a_terminal("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "q"), "-q")
    assert code == 0 and "converting" not in terminal
    done = _bridge("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(tmp_path / "p"))
    assert done.returncode == 0 and done.stderr == ""


def test_a_slow_framework_import_says_so_on_a_terminal_only(torch):
    factory = "tests/fixtures_unused/pt_models.py:relative_position"  # a model file that imports torch
    code, out, terminal = _on_a_terminal("unused", factory)
    assert code == 1 and "never_read" in out, out + terminal
    assert terminal.count("loading PyTorch...\r\n") == 1, terminal  # once, before the import
    assert "loading" not in out
    done = _bridge("unused", factory)
    assert done.returncode == 1 and done.stderr == ""  # a pipe gets no such line


_API_VERIFY = r"""
import os, sys, warnings
import bridge
report = bridge.verify(sys.argv[1], sys.argv[2])
print(report.verdict())
print("the caller's own line", file=sys.stderr)
os.write(2, b"I0000 00:00:1795989095.023704   23550 port.cc:153] the caller's own absl-like line\n")
warnings.warn("the caller's warning", FutureWarning)
print(sorted(k for k in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY") if k in os.environ))
"""


def test_the_python_api_keeps_the_start_up_lines_out_too(torch, tmp_path):
    pytest.importorskip("tensorflow")
    pytest.importorskip("transformers")
    out = tmp_path / "o"
    assert _bridge("convert", str(EXAMPLE), "--to", "pytorch", "-o", str(out)).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for key in ("TF_CPP_MIN_LOG_LEVEL", "TRANSFORMERS_VERBOSITY", "BRIDGE_DEBUG", "PYTHONWARNINGS"):
        env.pop(key, None)
    done = subprocess.run(
        [sys.executable, "-c", _API_VERIFY, str(EXAMPLE), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["PASS", "[]"]  # the caller's environment is as it was
    # nothing from the frameworks' start-up; after the call, the caller's stderr and warnings are theirs again
    own, absl_like, warning = done.stderr.splitlines()
    assert own == "the caller's own line" and absl_like.endswith("port.cc:153] the caller's own absl-like line")
    assert warning.endswith("FutureWarning: the caller's warning")
