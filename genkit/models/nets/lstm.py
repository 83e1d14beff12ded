"""A word-level LSTM language model in the layout of PyTorch's word_language_model example.

Embedding -> dropout -> multi-layer LSTM (dropout between layers) -> dropout -> output layer,
with the output layer sharing the embedding matrix (Press & Wolf 2017; Inan et al. 2017), so
the embedding and the LSTM have the same width. On Penn Treebank on a 2-core CPU it reaches a
lower perplexity than genkit's transformer in about the same time (docs/benchmarks/time-to-quality.md).

It plugs into the language-model family (genkit/models/lm.py) as the transformer does: `hidden` for the
loss, `forward` for logits and a cache (genkit.models.decoding samples from it). Its cache is
the LSTM's state (h, c), so `block_size` (the training window) is no limit on what it reads or
writes.
"""

from typing import NamedTuple

import torch
from torch import nn

from genkit.errors import GenkitError


class LSTMState(NamedTuple):
    """The LSTM's state after the tokens it read: h and c, each (n_layer, B, n_embd). Rows are
    independent, so requests that joined a batch at different times need no padding."""

    h: torch.Tensor
    c: torch.Tensor
    joinable = True  # rows of other requests can join (genkit.models.decoding)

    def select(self, rows: torch.Tensor) -> "LSTMState":
        return LSTMState(self.h[:, rows], self.c[:, rows])

    def join(self, other: "LSTMState") -> "LSTMState":
        return LSTMState(torch.cat([self.h, other.h], 1), torch.cat([self.c, other.c], 1))


class LSTMLanguageModel(nn.Module):
    # peft cannot adapt nn.LSTM, so LoRA has no default layers here (finetune.lora then stops, and
    # says to name some in finetune.lora.targets)
    lora_targets = ()

    def __init__(
        self,
        vocab_size: int,
        block_size: int,
        n_layer: int = 2,
        n_embd: int = 200,
        dropout: float = 0.2,
        tie_weights: bool = True,
    ):
        super().__init__()
        self.vocab_size, self.block_size = vocab_size, block_size
        self.n_layer, self.n_embd = n_layer, n_embd
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.drop = nn.Dropout(dropout)
        # nn.LSTM applies its dropout between layers only (it warns when there is no such place)
        self.lstm = nn.LSTM(n_embd, n_embd, n_layer, dropout=dropout if n_layer > 1 else 0.0, batch_first=True)
        self.lm_head = nn.Linear(n_embd, vocab_size, bias=False)
        # the example's initialisation: embedding and output layer uniform in [-0.1, 0.1], the
        # LSTM's own weights left at PyTorch's default, uniform in [-1/sqrt(n_embd), 1/sqrt(n_embd)]
        nn.init.uniform_(self.wte.weight, -0.1, 0.1)
        if tie_weights:
            self.lm_head.weight = self.wte.weight
        else:
            nn.init.uniform_(self.lm_head.weight, -0.1, 0.1)

    def load_pretrained(self, name_or_path: str) -> None:
        raise GenkitError(
            f"model.init_from={name_or_path} names Hugging Face weights, which load only into genkit's transformer "
            f"(GPT-2) or a network built by transformers, not into {type(self).__name__}. Pick "
            f"model/lm_net@model.net=gpt2 or model/lm_net@model.net=hf, or drop model.init_from to train this "
            f"network from scratch (or start from a genkit run of it)."
        )

    def forward(self, idx: torch.Tensor, cache: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """idx (B, T) -> logits (B, T, vocab) and the state after these T positions."""
        h, state = self.hidden(idx, cache)
        return self.lm_head(h), state

    def hidden(self, idx: torch.Tensor, cache: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        """idx (B, T) -> hidden states (B, T, n_embd) before the output layer (after its dropout),
        and the state (h, c) after these T positions; `cache` is the state to start from (zeros
        when None)."""
        x = self.drop(self.wte(idx))  # (B, T, C)
        out, state = self.lstm(x, cache)  # (B, T, C); h and c (n_layer, B, C)
        return self.drop(out), LSTMState(*state)

    @property
    def context_length(self) -> None:
        """No limit: the state carries everything read so far."""
        return None

    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 per weight that a token multiplies (2 forward, 4 backward;
        Kaplan et al. 2020), i.e. the LSTM's input and recurrent matrices of its four gates plus
        the output layer. The input embedding is a lookup (no FLOPs; with tied weights its matrix
        is counted once, as the output layer). The gates' elementwise work (a dozen or so FLOPs per
        unit and layer in the forward pass, against 16 x n_embd for its matrix products) is left
        out, as Kaplan et al. leave out nonlinearities. Backpropagation through time repeats each
        step's matrix products, so no term grows with the context, unlike attention's."""
        lstm = sum(p.numel() for p in self.lstm.parameters())
        return 6 * (lstm + self.lm_head.weight.numel())

    def repeat_cache(self, cache: LSTMState, times: int) -> LSTMState:
        """Each row's state (h, c: (n_layer, B, C)) repeated `times` times (rows n*times ..
        n*times + times - 1 continue row n), as the transformer's repeat_cache."""
        return LSTMState(*(t.repeat_interleave(times, 1) for t in cache))

    def carry(self, cache: LSTMState | None, keep: torch.Tensor | None = None) -> LSTMState | None:
        """The state to read the next window of the same rows from (data.streams=true: truncated
        backpropagation through time, so detached), zero in rows where keep is False (a stream's
        first window); None when there is none or the rows changed."""
        if cache is None:
            return None
        h, c = cache
        if keep is not None:
            if keep.shape[0] != h.shape[1]:
                return None
            mask = keep.to(h.dtype)[None, :, None]
            h, c = h * mask, c * mask
        return LSTMState(h.detach(), c.detach())

    def compile_units(self) -> list[nn.Module]:
        """Nothing to compile: TorchDynamo does not trace into nn.LSTM (a graph break), and the
        LSTM is already one fused ATen / cuDNN kernel; what remains (embedding, dropout) gains
        nothing. trainer.compile=true leaves this network as it is."""
        return []
