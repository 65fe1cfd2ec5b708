"""The C++ readers built with AddressSanitizer + UndefinedBehaviorSanitizer, run on the crafted corpus and
seeded mutations (embodied_lib.export.golden_corpus): every file is parsed or refused, and no sanitizer
reports anything. `make fuzz` runs the same reader under libFuzzer for longer."""
import shutil
import subprocess

import pytest

from embodied_lib.config import REPO_ROOT
from embodied_lib.export.golden_corpus import write_corpus

CPP = REPO_ROOT / "native" / "cpp"
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@pytest.fixture(scope="module")
def golden_check(tmp_path_factory):
    compiler = shutil.which("g++")
    assert compiler, "g++ is part of make setup (system-deps)"
    binary = tmp_path_factory.mktemp("sanitize") / "golden_check"
    subprocess.run([compiler, "-std=c++17", "-g", "-O1", *SANITIZERS, str(CPP / "golden_check.cpp"), "-o", str(binary),
                    "-lcrypto"], check=True, capture_output=True, text=True)
    return binary


def test_sanitized_reader_on_crafted_and_mutated_golden_files(golden_check, tmp_path, navigation_exports):
    paths = write_corpus(tmp_path / "corpus", n_mutations=400)
    proc = subprocess.run([str(golden_check), "--manifest", str(navigation_exports / "manifest.json"),
                           *map(str, paths), str(navigation_exports / "golden.bin")],
                          capture_output=True, text=True, errors="replace", timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == len(paths) + 1
    verdicts = {line.split()[1].rstrip(":").rsplit("/", 1)[-1]: line.split()[0] for line in lines}
    assert verdicts["valid.bin"] == "ok" and verdicts["golden.bin"] == "ok"
    for crafted in ("rank0", "overflow", "negative_dim", "zero_dim", "fewer_output_rows", "nan_expected",
                    "long_name", "huge_rank", "truncated_header", "out_of_range_input"):
        assert verdicts[f"{crafted}.bin"] == "error", crafted
    assert sum(v == "error" for v in verdicts.values()) > 200   # the mutations reach the error paths; none crash


def test_sanitized_iterations_parser(golden_check):
    values = ["1", "1000000", "1000001", "0", "-1", "1e3", "5abc", "", "99999999999999999999", "2147483648"]
    args = [a for v in values for a in ("--iterations", v)]
    proc = subprocess.run([str(golden_check), *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "runtime error" not in proc.stderr, proc.stderr
    parsed = [int(line.rsplit(" ", 1)[1]) for line in proc.stdout.splitlines()]
    assert parsed == [1, 1000000, -1, -1, -1, -1, -1, -1, -1, -1]
