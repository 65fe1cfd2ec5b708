"""Train the HRI heads on a frozen DistilBERT encoder, pick the confidence threshold, evaluate.

Why frozen: the encoder carries pretrained knowledge of words our corpus never shows (the
held-out synonyms); fine-tuning it on a few templates would trade that away, and it costs
minutes per epoch on 2 CPU cores where the heads train in seconds on cached embeddings.

ActionClassifier: cross-entropy on commands, plus *outlier exposure* on the out-of-domain
training text (cross-entropy to the uniform distribution), so that chit-chat gets low
confidence without a seventh class. ParamExtractor: MSE to the normalised parameter vector,
fed ``[embedding ; action probabilities]`` as the contract says.

    python -m embodied_lib.hri.train --profile quick
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from embodied_lib.config import RUNS_DIR, get_config, seed_everything
from embodied_lib.hri.commands import ACTIONS, PARAMETERS, denormalise, make_corpus
from embodied_lib.hri.encoder import SentenceEncoder, encoder_config, load_encoder, load_tokenizer, tokenize
from embodied_lib.hri.model import (ActionClassifier, CommandPipeline, ParamExtractor, action_classifier_spec,
                                    command_pipeline_spec, param_extractor_spec)
from embodied_lib.spec import save_checkpoint

OUTLIER_WEIGHT = 0.5
VAL_ACCEPT_TARGET = 0.98  # the threshold keeps this share of validation commands


def embed_texts(encoder: SentenceEncoder, tokenizer, texts, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    out = []
    encoder.eval()
    for i in tqdm(range(0, len(texts), batch_size), desc="embedding", disable=not progress, leave=False):
        ids, mask = tokenize(tokenizer, texts[i:i + batch_size], warn=False)
        with torch.no_grad():
            out.append(encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy())
    return np.concatenate(out) if out else np.zeros((0, encoder.distilbert.config.dim), np.float32)


def choose_threshold(val_confidence: np.ndarray, target_accept: float = VAL_ACCEPT_TARGET) -> float:
    """The highest threshold that still accepts ``target_accept`` of validation commands."""
    return float(np.quantile(val_confidence, 1.0 - target_accept))


def parameter_errors(actions: np.ndarray, predicted: np.ndarray, truth: np.ndarray) -> dict:
    """Mean absolute error per parameter in its unit, over commands whose action uses it."""
    errors = {}
    for i, (name, _, unit, _, _, used_by) in enumerate(PARAMETERS):
        rows = np.isin(actions, [ACTIONS.index(a) for a in used_by])
        if rows.any():
            diff = [abs(denormalise(name, p) - denormalise(name, t)) for p, t in zip(predicted[rows, i], truth[rows, i])]
            errors[name] = {"mae": float(np.mean(diff)), "unit": unit, "commands": int(rows.sum())}
    return errors


def train_hri(cfg: dict, out_dir: Path | None = None, progress: bool = True, encoder_dir=None):
    """Returns ``(pipeline, metrics)``; with ``out_dir`` (runs/) writes three checkpoints + metrics."""
    seed_everything(cfg["seed"])
    started = time.perf_counter()
    corpus = make_corpus(cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["n_ood"], seed=cfg["seed"])
    tokenizer = load_tokenizer()
    distilbert, route = load_encoder(encoder_dir)
    encoder = SentenceEncoder(distilbert).eval()
    embed_dim = distilbert.config.dim
    emb = {split: embed_texts(encoder, tokenizer, [c.text for c in cmds], progress=progress)
           for split, cmds in corpus.items()}
    labels = {s: np.array([c.action for c in cmds]) for s, cmds in corpus.items()}
    params = {s: np.stack([c.params for c in cmds]) if cmds else np.zeros((0, 10), np.float32)
              for s, cmds in corpus.items()}

    classifier, extractor = ActionClassifier(embed_dim), ParamExtractor(embed_dim + len(ACTIONS))
    x, y = torch.from_numpy(emb["train"]), torch.from_numpy(labels["train"])
    x_ood = torch.from_numpy(emb["ood_train"])
    opt = torch.optim.Adam(classifier.parameters(), lr=cfg["lr"], weight_decay=1e-4)
    history = {"classifier_loss": [], "val_accuracy": [], "extractor_loss": [], "val_param_mse": []}
    for _ in tqdm(range(cfg["classifier_epochs"]), desc="ActionClassifier", disable=not progress):
        classifier.train()
        for idx in torch.randperm(len(x)).split(cfg["batch_size"]):
            logits = classifier.logits(x[idx])
            loss = F.cross_entropy(logits, y[idx])
            if len(x_ood):
                ood_logits = classifier.logits(x_ood[torch.randint(len(x_ood), (len(idx) // 2 + 1,))])
                loss = loss - OUTLIER_WEIGHT * F.log_softmax(ood_logits, dim=-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        history["classifier_loss"].append(loss.item())
        history["val_accuracy"].append(float((_run(classifier, emb["val"]).argmax(1) == labels["val"]).mean()))

    def combined(split):
        return np.concatenate([emb[split], _run(classifier, emb[split])], axis=1).astype(np.float32)

    xc, yp = torch.from_numpy(combined("train")), torch.from_numpy(params["train"])
    opt = torch.optim.Adam(extractor.parameters(), lr=cfg["lr"])
    for _ in tqdm(range(cfg["extractor_epochs"]), desc="ParamExtractor", disable=not progress):
        extractor.train()
        for idx in torch.randperm(len(xc)).split(cfg["batch_size"]):
            loss = F.mse_loss(extractor(xc[idx]), yp[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        history["extractor_loss"].append(loss.item())
        history["val_param_mse"].append(float(((_run(extractor, combined("val")) - params["val"]) ** 2).mean()))
    classifier.eval()
    extractor.eval()

    # threshold on validation (unseen phrasings too), then the test numbers
    val_probs = _run(classifier, emb["val"])
    threshold = choose_threshold(val_probs.max(1))
    test_probs, ood_probs = _run(classifier, emb["test"]), _run(classifier, emb["ood_test"])
    predicted = test_probs.argmax(1)
    confusion = np.zeros((len(ACTIONS), len(ACTIONS)), dtype=int)
    np.add.at(confusion, (labels["test"], predicted), 1)
    metrics = {
        "config": cfg, "encoder_route": route, "embed_dim": embed_dim,
        "corpus": {k: len(v) for k, v in corpus.items()},
        "test_accuracy": float((predicted == labels["test"]).mean()),
        "chance_accuracy": 1.0 / len(ACTIONS),
        "confusion_matrix": confusion.tolist(),
        "parameter_errors": parameter_errors(labels["test"], _run(extractor, combined("test")), params["test"]),
        "confidence_threshold": threshold,
        "test_accept_rate": float((test_probs.max(1) >= threshold).mean()),
        "ood_reject_rate": float((ood_probs.max(1) < threshold).mean()),
        "val_accept_rate": float((val_probs.max(1) >= threshold).mean()),
        "ood_val_reject_rate": float((_run(classifier, emb["ood_val"]).max(1) < threshold).mean()),
        "train_seconds": time.perf_counter() - started,
        "history": history,
    }
    pipeline = CommandPipeline(encoder, classifier, extractor).eval()
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(action_classifier_spec(threshold), classifier, out_dir / "action_classifier")
        save_checkpoint(param_extractor_spec(threshold), extractor, out_dir / "param_extractor")
        save_checkpoint(command_pipeline_spec(encoder_config(distilbert), threshold), pipeline, out_dir / "command_pipeline")
        (out_dir / "hri").mkdir(parents=True, exist_ok=True)
        (out_dir / "hri" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return pipeline, metrics


def _run(module, array: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(array)).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the HRI heads (ActionClassifier, ParamExtractor).")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--out", type=Path, default=RUNS_DIR, help="runs folder (one subfolder per model)")
    parser.add_argument("--encoder-dir", help="a pretrained DistilBERT directory (default: $EMBODIED_DISTILBERT_DIR, "
                                              "else the packaged MiniLM widened to 768)")
    args = parser.parse_args(argv)
    _, m = train_hri(get_config("hri", args.profile), args.out, encoder_dir=args.encoder_dir)
    print(json.dumps({k: m[k] for k in ("encoder_route", "test_accuracy", "confidence_threshold", "test_accept_rate",
                                        "ood_reject_rate", "train_seconds")}, indent=2))


if __name__ == "__main__":
    main()
