"""Every CLI checks its arguments, and that its outputs can be written, before any work starts."""
import subprocess
import sys

import pytest

from embodied_lib.config import REPO_ROOT


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120)


@pytest.mark.parametrize("module, args, message", [
    ("embodied_lib.navigation.train", ["--total-steps", "0"], "outside [1"),
    ("embodied_lib.navigation.train", ["--total-steps", "500"], "leaves no training"),
    ("embodied_lib.navigation.train", ["--total-steps", "1e3"], "is not an integer"),
    ("embodied_lib.navigation.train", ["--seed", "-3"], "outside [0"),
    ("embodied_lib.navigation.train", ["--out", "/proc/nope"], "cannot write to /proc/nope"),
    ("embodied_lib.manipulation.train", ["--episodes", "1"], "outside [2"),
    ("embodied_lib.manipulation.train", ["--epochs", "5abc"], "is not an integer"),
    ("embodied_lib.manipulation.train", ["--out", "/proc/x/y"], "cannot write to /proc/x/y"),
    ("embodied_lib.hri.train", ["--out", "/proc/nope"], "cannot write to"),
    ("embodied_lib.export", ["--parity-inputs", "0"], "outside [1"),
    ("embodied_lib.export", ["--runs", "/nonexistent/runs"], "is not a folder"),
    ("embodied_lib.native", ["parity", ".", "--iterations", "99999999999"], "outside [1, 1000000]"),
    ("embodied_lib.runtime.latency", ["/nonexistent/export"], "is not a folder"),
    ("embodied_lib.workbook", ["--profile", "huge"], "unknown profile"),
    ("embodied_lib.export.golden_corpus", ["/tmp/x", "--mutations", "-1"], "outside [0"),
    ("embodied_lib.deploy", ["realtime", "--rate", "0"], "expected a number > 0"),
    ("embodied_lib.deploy", ["faults", "--probability", "1.5"], "at most 1"),
    ("embodied_lib.deploy", ["soak", "--ticks", "0"], "outside [1"),
    ("embodied_lib.deploy", ["guard", "--exports", "/nonexistent/exports"], "is not a folder"),
    ("embodied_lib.deploy", ["missions", "--profile", "huge"], "unknown profile"),
    ("embodied_lib.profiling", ["--iterations", "0"], "outside [1"),
    ("embodied_lib.profiling", ["--exports", "/nonexistent/exports"], "is not a folder"),
    ("embodied_lib.profiling", ["--out", "/proc/nope"], "cannot write to /proc/nope"),
    ("embodied_lib.profiling.memory", ["child", ".", "torchscript"], "needs --torchscript"),
    ("embodied_lib.browser", ["screenshots", "/nonexistent/notebooks"], "is not a folder"),
    ("embodied_lib.scale", ["--workers", "0"], "outside [1"),
    ("embodied_lib.scale", ["--workers", "1", "3", "--batch-size", "64"], "must be a multiple"),
    ("embodied_lib.manipulation.train", ["--batch-size", "0"], "outside [1"),
    ("embodied_lib.manipulation.reference", ["--record", "/tmp"], "--record needs --command and --commit"),
    ("embodied_lib.browser", ["commands", "go", "--out", "/proc/nope"], "cannot write to /proc/nope"),
])
def test_bad_arguments_fail_fast_with_a_message(module, args, message):
    proc = cli(module, *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-500:])
    assert message in proc.stderr, proc.stderr[-500:]


@pytest.mark.parametrize("module", ["embodied_lib.navigation.train", "embodied_lib.manipulation.train",
                                    "embodied_lib.hri.train", "embodied_lib.export", "embodied_lib.native",
                                    "embodied_lib.runtime.latency", "embodied_lib.workbook",
                                    "embodied_lib.export.trust", "embodied_lib.export.golden_corpus",
                                    "embodied_lib.deploy", "embodied_lib.profiling", "embodied_lib.profiling.memory",
                                    "embodied_lib.browser", "embodied_lib.scale",
                                    "embodied_lib.manipulation.reference"])
def test_every_cli_has_help(module):
    proc = cli(module, "--help")
    assert proc.returncode == 0 and "usage:" in proc.stdout
