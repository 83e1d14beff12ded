"""The language-model family (`model=lm`; `model=gpt`, its old name, still selects it): next-token
cross-entropy, an optimizer (AdamW unless a recipe picks another) with warmup + cosine decay,
per-token perplexity, and sampling with temperature / top-k / top-p through the network's cache.

The network (`model.net`, config group model/lm_net) is a decoder-only transformer
(genkit/models/nets/transformer.py), an LSTM (genkit/models/nets/lstm.py) or any Hugging Face
causal LM (genkit/models/nets/hf_causal_lm.py); the family asks of it only what
`LanguageModelNet` lists.
"""

import copy
import functools
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from torchmetrics import MeanMetric

from genkit.errors import GenkitError
from genkit.loss_targets import IGNORE_INDEX
from genkit.models.base import GenerativeModel
from genkit.models.completion import candidate_logprobs
from genkit.models.decoding import Sampling, generate
from genkit.models.label_task import (
    HEADS,
    LABEL_LOSSES,
    LabelTask,
    balanced_token_loss,
    head_logprobs,
    head_loss,
    last_prompt_positions,
    train_label_rows,
)
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.optim import build_optimizer
from genkit.models.reference.gpt_loop import RawGPTLoop
from genkit.options import BOOLEAN, Option, number, whole_number

log = logging.getLogger("genkit")


def _without_nulls(optimizer: Callable) -> Callable:
    """The optimizer's partial without its keywords set to null, which then take the optimizer's
    default: a config merged over lm.yaml cannot delete AdamW's `betas`, so a recipe that picks
    SGD sets `betas: null` (experiment=lstm_ptb)."""
    if not isinstance(optimizer, functools.partial) or None not in optimizer.keywords.values():
        return optimizer
    keywords = {k: v for k, v in optimizer.keywords.items() if v is not None}
    return functools.partial(optimizer.func, *optimizer.args, **keywords)


class LanguageModelNet(Protocol):
    """What the language-model family asks of its network (a transformer, an LSTM, or one of your own).

    `cache` is whatever the network carries from one call to the next (a transformer's keys and
    values, an LSTM's state); None starts afresh, and each row continues from its own place in it.
    genkit's one generation loop (genkit.models.decoding) samples from `hidden` and `lm_head`;
    `genkit serve` also regroups rows between tokens through the cache's `select(rows)` and
    `join(other)` and its `joinable` (genkit/models/nets/kv_cache.py is the transformer's).
    Optional, and so not a member here: `repeat_cache(cache, times)`, each row's cache repeated
    `times` times, with which label scoring reads each prompt once instead of once per label
    (genkit.models.completion)."""

    wte: nn.Embedding  # the input embedding (Hugging Face GPT-2 weights load into it)
    lm_head: nn.Linear  # the output layer, no bias: the loss reads its weight
    vocab_size: int
    block_size: int  # the training window
    # the most positions one read may span (None: no limit, as an LSTM's state); past it the
    # generation loop re-reads the last context_length tokens for every further token
    context_length: int | None
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


class LanguageModel(GenerativeModel):
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
        head: str = "tokens",
        label_loss: str = "plain",
        label_rows: bool = True,
    ):
        """rank_by / rank_mode: the validation metric that ranks best.ckpt and early stopping
        instead of val/loss, e.g. val/macro_f1 and max for a label task (data=pairs).

        On a label task (genkit.models.label_task): head=labels puts a linear layer over the labels
        on the prompt's last hidden state; label_loss=balanced weighs every label alike (and
        logit_adjusted, with the label head, leaves the training prior out of its scores);
        label_rows: under LoRA, the embedding and output rows of the labels' tokens train too."""
        super().__init__()
        if head not in HEADS:
            raise GenkitError(
                f"model.head={head!r}: choose tokens (the language model's next-token output; labels are scored by "
                f"their likelihood) or labels (a classification layer over a label task's labels)."
            )
        if label_loss not in LABEL_LOSSES or (label_loss == "logit_adjusted" and head != "labels"):
            raise GenkitError(
                f"model.label_loss={label_loss!r} (model.head={head}): choose plain, balanced (each label weighs "
                f"alike) or, with model.head=labels, logit_adjusted (the label prior left out of the head's scores)."
            )
        if not isinstance(label_rows, bool):
            raise GenkitError(f"model.label_rows={label_rows!r} must be true or false.")
        self.head, self.label_loss, self.label_rows = head, label_loss, label_rows
        self.label_head: nn.Linear | None = None  # made in setup (the label count is the data's)
        self.register_buffer("label_ids", None)  # with the head: (K, longest) completion ids of the labels
        self.label_task: LabelTask | None = None
        # a checkpoint of a head=labels run holds label_head.weight: the layer is made to receive it
        self.register_load_state_dict_pre_hook(self._make_label_head_for_state)
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
                    f"has no load_pretrained(name_or_path) to load them (LanguageModelNet in genkit/models/lm.py). "
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

    def _make_label_head_for_state(self, module, state: dict, prefix: str, *args) -> None:
        weight, ids = state.get(f"{prefix}label_head.weight"), state.get(f"{prefix}label_ids")
        if weight is not None and (self.label_head is None or self.label_head.weight.shape != weight.shape):
            self._make_label_head(weight.shape[1], torch.zeros_like(ids))

    def _make_label_head(self, width: int, label_ids: torch.Tensor) -> None:
        """The head, and the labels' completion ids (K, longest; each row padded with its last id,
        the closing end-of-text) kept beside it so the run answers with a label's text on its own."""
        self.label_head = nn.Linear(width, len(label_ids), bias=False, device=label_ids.device)
        self.register_buffer("label_ids", label_ids)

    def setup(self, stage: str) -> None:
        """On a label task: the label head (made, or checked against the data's labels), the loss's
        label counts, and under LoRA the label tokens' rows."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        labels = getattr(datamodule, "labels", None)
        if not labels:
            if self.head == "labels" or self.label_loss != "plain":
                raise GenkitError(
                    f"model.head={self.head} model.label_loss={self.label_loss} need a label task: data=pairs whose "
                    f"training completions form a closed set of labels (or data.labels=[...]), and "
                    f"{getattr(datamodule, 'name', 'this data')} has none. Leave them at model.head=tokens "
                    f"model.label_loss=plain."
                )
            return
        written = [datamodule.encode_completion(x) for x in labels]
        self.label_task = LabelTask(written, datamodule.label_counts)
        if self.head == "labels":
            if self.label_head is None:
                longest = max(map(len, written))
                ids = torch.tensor([w + w[-1:] * (longest - len(w)) for w in written], device=self.device)
                self._make_label_head(self.net.n_embd, ids)
                nn.init.normal_(self.label_head.weight, std=0.02)
                log.info("model.head=labels: a %d x %d layer over the prompt's last token (%s parameters)",
                         self.net.n_embd, len(labels), f"{self.label_head.weight.numel():,}")  # fmt: skip
            elif self.label_head.out_features != len(labels):
                raise GenkitError(
                    f"The starting run's label head scores {self.label_head.out_features} labels, but "
                    f"{datamodule.name} has {len(labels)}; start from a run of the same labels, or from one "
                    f"without a label head (model.head=tokens)."
                )
        elif self.label_rows and any("lora_" in name for name, _ in self.named_parameters()):
            n = train_label_rows([self.net.wte.weight, self.net.lm_head.weight], self.label_task.token_ids)
            log.info("LoRA on a label task: the embedding and output rows of the %d tokens the labels are written "
                     "with train too (%s parameters; model.label_rows=false: adapters only)",
                     len(self.label_task.token_ids), f"{n:,}")  # fmt: skip

    def label_logprobs(self, prompts, labels) -> torch.Tensor:
        """(len(prompts), len(labels)) the model's log-score of each label (its completion ids)
        after each prompt: the label head's log-probabilities, or the label's log-likelihood."""
        if self.label_head is not None:
            return head_logprobs(self.net, self.label_head, prompts)
        return candidate_logprobs(self.net, prompts, labels)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)[0]

    def compile_networks(self) -> None:
        """torch.compile in place the pieces the network names (a transformer: each block, one
        graph reused by every block), so state_dict keys stay unchanged."""
        for unit in self.net.compile_units():
            unit.compile()

    def _head_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The label head's loss on each row's last prompt token (the completion is not read)."""
        last = last_prompt_positions(y)
        h, _ = self.net.hidden(x[:, : int(last.max()) + 1])
        logits = self.label_head(h[torch.arange(len(x), device=x.device), last])
        labels = self.label_task.row_labels(y)
        return head_loss(logits, labels, self.label_task, self.label_loss), (labels >= 0).sum()

    def _loss(self, batch, stage: str) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        if self.label_head is not None:
            return self._head_loss(x, y)
        start = None
        if len(batch) == 3:
            # side-by-side streams (data.streams=true): each row continues the same row of the
            # stage's previous batch, except where batch[2] marks a stream's first window
            start = self.net.carry(self._carried.get(stage), keep=~batch[2])
        h, end = self.net.hidden(x, start)  # (B, T, C)
        if len(batch) == 3:
            self._carried[stage] = self.net.carry(end)
        if stage == "train" and self.label_loss == "balanced":
            return balanced_token_loss(h, self.net.lm_head.weight, y, self.label_task), (y != IGNORE_INDEX).sum()
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
        if self.label_head is not None:
            return self._sample_labels(n, generator, prompt_ids, temperature)
        start = torch.tensor([prompt_ids or [0]], dtype=torch.long, device=self.device).repeat(n, 1)
        return generate(self.net, start, max_new_tokens, Sampling(temperature, top_k, top_p, generator), use_cache)

    def _sample_labels(
        self, n: int, generator: torch.Generator | None, prompt_ids: list[int] | None, temperature: float
    ) -> torch.Tensor:
        """A label head's answer: the prompt followed by a label's completion (the likeliest at
        temperature 0, else drawn from the head's distribution at that temperature)."""
        start = torch.tensor([prompt_ids or [0]], dtype=torch.long, device=self.device)
        h, _ = self.net.hidden(start)
        logits = self.label_head(h[:, -1]).float()[0]  # (K,)
        if temperature == 0:
            picked = logits.argmax().repeat(n)
        else:
            probs = (logits / temperature).softmax(dim=-1)
            picked = torch.multinomial(probs, n, replacement=True, generator=generator)
        return torch.cat([start.repeat(n, 1), self.label_ids[picked]], dim=1)

    def configure_optimizers(self):
        # weight decay on matrices (linear weights, embeddings); none on biases and LayerNorm
        params = [p for p in self.parameters() if p.requires_grad]
        # rows-only matrices (LoRA on a label task) get no decay: it would move their frozen rows
        decay = [p for p in params if p.dim() >= 2 and not getattr(p, "_genkit_rows_only", False)]
        no_decay = [p for p in params if not any(p is q for q in decay)]
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
