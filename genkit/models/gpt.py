"""GPT-style language model: next-token cross-entropy, AdamW with warmup + cosine decay,
per-token perplexity, and sampling with temperature / top-k / top-p through a KV cache."""

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torchmetrics import MeanMetric

from genkit.data.text import IGNORE_INDEX
from genkit.models.base import GenerativeModel
from genkit.models.linear_cross_entropy import linear_cross_entropy
from genkit.models.optim import build_optimizer


class GPT(GenerativeModel):
    modality = "text"
    sample_options = ("max_new_tokens", "temperature", "top_k", "top_p", "use_cache")
    # the attention and MLP projections of every block (LoRA's usual choice for GPT-2)
    lora_targets = ("net.blocks.*.attn.qkv", "net.blocks.*.attn.proj", "net.blocks.*.mlp.fc", "net.blocks.*.mlp.proj")

    def __init__(
        self,
        net: nn.Module,
        optimizer: Callable,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        token_unit: str = "token",
        init_from: str | None = None,
    ):
        super().__init__()
        if init_from:
            # the weights of a Hugging Face GPT-2 (a hub id or a local folder)
            from genkit.models.nets.hf_gpt2 import load_gpt2_weights

            load_gpt2_weights(net, init_from)
        self.net = net
        self.optimizer = optimizer
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio
        self.token_unit = token_unit
        # token-weighted means, so perplexity is per token however the batches fall
        self.val_nll, self.test_nll = MeanMetric(), MeanMetric()

    def adapt_starting_weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A run with a longer context starts this one with its first block_size positions."""
        key, positions = "net.wpe.weight", self.net.block_size
        if key in state and state[key].shape[0] > positions:
            state = {**state, key: state[key][:positions]}
        return state

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.net(idx)[0]

    def compile_networks(self) -> None:
        """torch.compile each transformer block in place: one graph, reused by every block, and
        state_dict keys unchanged. (Training calls net.hidden, not net.forward.)"""
        for block in self.net.blocks:
            block.compile()

    def _loss(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch
        h, _ = self.net.hidden(x)  # (B, T, C)
        loss = linear_cross_entropy(h.flatten(0, 1), self.net.lm_head.weight, y.flatten(), IGNORE_INDEX)
        return loss, (y != IGNORE_INDEX).sum()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def _eval_step(self, batch, metric: MeanMetric) -> None:
        loss, n_tokens = self._loss(batch)
        metric.update(loss, weight=n_tokens)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.val_nll)

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, self.test_nll)

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
        """6N + 12 L T d per token (Kaplan et al. 2020; PaLM's appendix B), N without position embeddings."""
        net = self.net
        n = sum(p.numel() for p in net.parameters()) - net.wpe.weight.numel()
        per_token = 6 * n + 12 * net.n_layer * net.block_size * net.n_embd
        return per_token * net.block_size * batch_size

    def reference_loop(self, data, batch_size: int, device):
        from genkit.models.reference.gpt_loop import RawGPTLoop

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
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup, floor = min(self.warmup_steps, total), self.min_lr_ratio

        def lr_factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
