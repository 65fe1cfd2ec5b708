"""Crafted golden.bin files: the hostile cases every native reader must refuse cleanly, plus seeded mutations.

Used by the tests (sanitizer builds, every runner) and as the seed corpus of ``make fuzz``::

    python -m embodied_lib.export.golden_corpus OUT_DIR [--mutations 300]
"""
from __future__ import annotations

import argparse
import struct
from pathlib import Path

import numpy as np

from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import GOLDEN_SEED


def raw_golden(tensors) -> bytes:
    """golden.bin bytes with any header values, even ones write_golden never produces:
    ``tensors`` = [(name, shape, float values or raw bytes)]."""
    out = b"EMBGOLD1" + struct.pack("<I", len(tensors))
    for name, shape, data in tensors:
        encoded = name.encode()
        out += struct.pack("<I", len(encoded)) + encoded + struct.pack("<I", len(shape))
        out += struct.pack(f"<{len(shape)}q", *shape)
        out += data if isinstance(data, bytes) else np.asarray(data, np.float32).tobytes()
    return out


def crafted_cases(state: np.ndarray, expected: np.ndarray, input_name="input.state",
                  output_name="output.q_values") -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what the error must say), from one valid input/output pair."""
    n_out = expected.shape[1]
    nan_expected = expected.copy()
    nan_expected[min(2, len(expected) - 1), 0] = np.nan
    out_row = (1, n_out), np.zeros(n_out)
    return {
        "rank0": (raw_golden([(input_name, (), b""), (output_name, *out_row)]), "rank 0"),
        "overflow": (raw_golden([(input_name, (1 << 40, 1 << 40, 1 << 40), b""), (output_name, *out_row)]),
                     "larger than the file"),
        "negative_dim": (raw_golden([(input_name, (2, -256), b""), (output_name, *out_row)]), "dimension of -256"),
        "zero_dim": (raw_golden([(input_name, (0, 256), b""), (output_name, *out_row)]), "dimension of 0"),
        "fewer_output_rows": (raw_golden([(input_name, state.shape, state), (output_name, (2, n_out), expected[:2])]),
                              "every tensor needs one row per vector"),
        "nan_expected": (raw_golden([(input_name, state.shape, state), (output_name, expected.shape, nan_expected)]),
                         "holds NaN or Inf"),
        "long_name": (raw_golden([("input." + "s" * 100_000, (1, 256), np.zeros(256))]), "tensor name of"),
        "huge_rank": (b"EMBGOLD1" + struct.pack("<II", 1, 5) + b"input" + struct.pack("<I", 1 << 30), "rank"),
        "truncated_header": (b"EMBGOLD1\x01\x00", "truncated"),
        "out_of_range_input": (raw_golden([(input_name, state.shape, state * 0 + 7.0),
                                           (output_name, expected.shape, expected)]), "outside the valid range"),
    }


def mutations(valid: bytes, n: int, seed: int = GOLDEN_SEED) -> list[bytes]:
    """``n`` seeded corruptions of a valid file: flipped bytes, truncations, overwritten header words."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        data = bytearray(valid)
        kind = rng.integers(3)
        if kind == 0:
            for pos in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[pos] = int(rng.integers(256))
        elif kind == 1:
            data = data[: int(rng.integers(0, len(data)))]
        else:   # a header word (count, name length, rank or a dimension) set to an extreme
            pos = int(rng.integers(8, min(len(data) - 8, 200)))
            data[pos:pos + 8] = struct.pack("<q", int(rng.choice([0, -1, 1 << 31, (1 << 62) + 1, 255])))
        out.append(bytes(data))
    return out


def synthetic_pair(rows: int = 4, width: int = 256, outputs: int = 4, seed: int = GOLDEN_SEED):
    rng = np.random.default_rng(seed)
    return rng.random((rows, width), dtype=np.float32), rng.standard_normal((rows, outputs)).astype(np.float32)


def write_corpus(out_dir, n_mutations: int = 300) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state, expected = synthetic_pair()
    valid = raw_golden([("input.state", state.shape, state), ("output.q_values", expected.shape, expected)])
    files = {"valid": valid, **{k: v for k, (v, _) in crafted_cases(state, expected).items()},
             **{f"mutation_{i:04d}": m for i, m in enumerate(mutations(valid, n_mutations))}}
    paths = []
    for name, data in files.items():
        (out_dir / f"{name}.bin").write_bytes(data)
        paths.append(out_dir / f"{name}.bin")
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write crafted and mutated golden.bin files (a fuzzing seed corpus).")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--mutations", type=int_in(0, 100_000), default=300, help="seeded corruptions of a valid file")
    args = parser.parse_args(argv)
    require_writable(parser, args.out_dir)
    print(f"{len(write_corpus(args.out_dir, args.mutations))} files in {args.out_dir}")


if __name__ == "__main__":
    main()
