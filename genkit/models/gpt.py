"""GPT-style language model: next-token cross-entropy, an optimizer (AdamW unless a recipe picks
another) with warmup + cosine decay, per-token perplexity, and sampling with temperature /
top-k / top-p through the network's cache.

The network (`model.net`, config group model/lm_net) is a decoder-only transformer
(genkit/models/nets/transformer.py), an LSTM (genkit/models/nets/lstm.py) or any Hugging Face
causal LM (genkit/models/nets/hf_causal_lm.py); the family asks of it only what
`LanguageModelNet` lists.
"""

import copy
import functools
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torchmetrics import MeanMetric

from genkit.data.text import IGNORE_INDEX
from genkit.errors import GenkitError
from genkit.models.base import GenerativeModel
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.optim import build_optimizer
from genkit.models.reference.gpt_loop import RawGPTLoop
from genkit.options import BOOLEAN, Option, number, whole_number


def _without_nulls(optimizer: Callable) -> Callable:
    """The optimizer's partial without its keywords set to null, which then take the optimizer's
    default: a config merged over gpt.yaml cannot delete AdamW's `betas`, so a recipe that picks
    SGD sets `betas: null` (experiment=lstm_ptb)."""
    if not isinstance(optimizer, functools.partial) or None not in optimizer.keywords.values():
        return optimizer
    keywords = {k: v for k, v in optimizer.keywords.items() if v is not None}
    return functools.partial(optimizer.func, *optimizer.args, **keywords)


class LanguageModelNet(Protocol):
    """What the GPT family asks of its network (a transformer, an LSTM, or one of your own).

    `cache` is whatever the network carries from one call to the next (a transformer's keys and
    values, an LSTM's state); None starts afresh. Optional, and so not a member here:
    `repeat_cache(cache, times)`, each row's cache repeated `times` times, with which label
    scoring reads each prompt once instead of once per label (genkit.models.completion)."""

    wte: nn.Embedding  # the input embedding (Hugging Face GPT-2 weights load into it)
    lm_head: nn.Linear  # the output layer, no bias: the loss reads its weight
    vocab_size: int
    block_size: int  # the training window; whether it bounds generation is the network's affair
    n_layer: int
    n_embd: int
    # the layers LoRA adapts unless finetune.lora.targets names others (globs of module names
    # inside the network; may be none)
    lora_targets: tuple[str, ...]

    def load_pretrained(self, name_or_path: str) -> None:
        """model.init_from=<Hugging Face id or folder>: its weights into this network (or a
        GenkitError saying which networks take them)."""

    def __call__(self, idx: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        """idx (B, T) -> logits (B, T, vocab_size) and the cache extended by these positions."""

    def hidden(self, idx: torch.Tensor, cache: Any = None) -> tuple[torch.Tensor, Any]:
        """idx (B, T) -> hidden states (B, T, n_embd) that lm_head turns into logits, and the cache."""

    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """idx (B, T) extended by max_new_tokens sampled tokens (B, T + max_new_tokens)."""

    def flops_per_token(self) -> float:
        """Training FLOPs per token (for MFU in `genkit bench`)."""

    def compile_units(self) -> list[nn.Module]:
        """The submodules that trainer.compile=true compiles in place (may be none)."""

    def carry(self, cache: Any, keep: torch.Tensor | None = None) -> Any:
        """What the next window of the same rows starts from, given the cache this window ended
        with (no gradient flows back through it); rows where `keep` is False start afresh. None
        where the cache cannot carry over (a transformer's positions restart each window)."""


# the most tokens `genkit sample` generates per sample without force=true (on a CPU, 64 samples of
# 10000 tokens take many minutes)
MAX_NEW_TOKENS = 10000


class GPT(GenerativeModel):
    modality = "text"
    sample_options = {
        "max_new_tokens": Option(
            200,
            f"tokens to generate (more than {MAX_NEW_TOKENS} with force=true)",
            whole_number(1),
            limit=MAX_NEW_TOKENS,
        ),
        "temperature": Option(
            1.0,
            "0 picks the likeliest token, higher is more random",
            number(lambda v: v >= 0, "a number of at least 0"),
        ),
        "top_k": Option(None, "sample from the k likeliest tokens", whole_number(1)),
        "top_p": Option(
            None,
            "sample from the likeliest tokens that make up mass p",
            number(lambda v: 0 < v <= 1, "a number in (0, 1]"),
        ),
        "use_cache": Option(True, "reuse attention keys and values across tokens (false: recompute)", BOOLEAN),
    }

    def __init__(
        self,
        net: LanguageModelNet,
        optimizer: Callable,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        token_unit: str = "token",
        init_from: str | None = None,
        rank_by: str | None = None,
        rank_mode: str = "min",
    ):
        """rank_by / rank_mode: the validation metric that ranks best.ckpt and early stopping
        instead of val/loss, e.g. val/macro_f1 and max for a label task (data=pairs)."""
        super().__init__()
        if rank_by is not None:
            if rank_mode not in ("min", "max") or not str(rank_by).startswith("val/"):
                raise GenkitError(
                    f"model.rank_by={rank_by!r} model.rank_mode={rank_mode!r}: name a validation metric (val/...) "
                    f"and whether lower (min) or higher (max) is better, e.g. model.rank_by=val/macro_f1 "
                    f"model.rank_mode=max."
                )
            self.checkpoint_metric = (str(rank_by), rank_mode)
        if init_from:
            # the weights of a Hugging Face checkpoint (a hub id or a local folder); a network of the
            # user's own may not load any (LanguageModelNet.load_pretrained): say so, not a traceback
            if not callable(getattr(net, "load_pretrained", None)):
                raise GenkitError(
                    f"model.init_from={init_from} names pretrained weights, but the network {type(net).__name__} "
                    f"has no load_pretrained(name_or_path) to load them (LanguageModelNet in genkit/models/gpt.py). "
                    f"Add one, use model/lm_net@model.net=hf or gpt2, or start from a genkit run of this network."
                )
            net.load_pretrained(init_from)
        self.net = net
        self.optimizer = _without_nulls(optimizer)
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio
        self.token_unit = token_unit
        # token-weighted means, so perplexity is per token however the batches fall
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()
        # per stage, the cache the last batch of side-by-side streams left (net.carry); a resumed
        # run starts its streams afresh
        self._carried: dict[str, Any] = {}

    @property
    def lora_targets(self) -> tuple[str, ...]:
        """The network's own LoRA targets (a transformer: its attention and MLP projections; a
        Hugging Face model: peft's choice for its architecture), as names inside this model."""
        return tuple(f"net.{pattern}" for pattern in self.net.lora_targets)

    def adapt_starting_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A run with a longer context starts this one with its first block_size positions."""
        key, positions = "net.wpe.weight", self.net.block_size
        if key in state and state[key].shape[0] > positions:
            state = {**state, key: state[key][:positions]}
        return state

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)[0]

    def compile_networks(self) -> None:
        """torch.compile in place the pieces the network names (a transformer: each block, one
        graph reused by every block), so state_dict keys stay unchanged."""
        for unit in self.net.compile_units():
            unit.compile()

    def _loss(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        start = None
        if len(batch) == 3:
            # side-by-side streams (data.streams=true): each row continues the same row of the
            # stage's previous batch, except where batch[2] marks a stream's first window
            start = self.net.carry(self._carried.get(stage), keep=~batch[2])
        h, end = self.net.hidden(x, start)  # (B, T, C)
        if len(batch) == 3:
            self._carried[stage] = self.net.carry(end)
        loss = linear_cross_entropy(h.flatten(0, 1), self.net.lm_head.weight, y.flatten(), IGNORE_INDEX)
        return loss, (y != IGNORE_INDEX).sum()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch, "train")
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch, stage: str, metric: MeanMetric) -> None:
        loss, n_tokens = self._loss(batch, stage)
        metric.update(loss, weight=n_tokens)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val", self.val_nll)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test", self.test_nll)

    def _log_eval(self, stage: str, metric: MeanMetric) -> None:
        nll = metric.compute()
        metric.reset()
        metrics = {f"{stage}/loss": nll, f"{stage}/ppl": torch.exp(nll)}
        if self.token_unit == "char":
            metrics[f"{stage}/bpc"] = nll / math.log(2)  # bits per character
        self.log_dict(metrics, prog_bar=stage == "val")

    def on_validation_epoch_end(self) -> None:
        self._log_eval("val", self.val_nll)

    def on_test_epoch_end(self) -> None:
        self._log_eval("test", self.test_nll)

    def data_inputs(self, options) -> tuple[str, ...]:
        return ("prompt_ids",)

    def flops_per_step(self, batch_size: int) -> float:
        """The network's training FLOPs per token, for batch_size windows of block_size tokens."""
        return self.net.flops_per_token() * self.net.block_size * batch_size

    def reference_loop(self, data, batch_size: int, device, bf16: bool):
        if getattr(self.optimizer, "func", self.optimizer) is not torch.optim.AdamW:
            return None  # the hand-written loop is nanoGPT's, with AdamW: no like-for-like comparison
        opt = self.optimizer.keywords
        return RawGPTLoop(
            data["train"],
            data["val"],
            block_size=self.net.block_size,
            batch_size=batch_size,
            lr=opt["lr"],
            betas=tuple(opt.get("betas", (0.9, 0.999))),
            weight_decay=opt.get("weight_decay", 0.0),
            device=device,
            net=copy.deepcopy(self.net),
            bf16=bf16,
        )

    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        generator: torch.Generator | None = None,
        prompt_ids: list[int] | None = None,
        max_new_tokens: int = 200,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """n continuations (n, len(prompt_ids) + max_new_tokens) of prompt_ids (default: token 0)."""
        start = torch.tensor([prompt_ids or [0]], dtype=torch.long, device=self.device).repeat(n, 1)
        return self.net.generate(start, max_new_tokens, temperature, top_k, top_p, generator, use_cache)

    def configure_optimizers(self):
        # weight decay on matrices (linear weights, embeddings); none on biases and LayerNorm
        params = [p for p in self.net.parameters() if p.requires_grad]
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        optimizer = build_optimizer(self.optimizer, [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
        total = max(self.planned_steps(), 1)
        warmup, floor = min(self.warmup_steps, total), self.min_lr_ratio

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
