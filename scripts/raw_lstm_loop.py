"""PyTorch's word_language_model example (its default LSTM with --tied) on Penn Treebank, as a
plain loop: what a user would copy instead of `genkit train experiment=lstm_ptb`.

    python scripts/raw_lstm_loop.py --epochs 6          # the figure the PTB row is measured against

The example's recipe: words with <eos> ending each line, a 2-layer LSTM of 200 units with tied
200-wide embeddings, dropout 0.2, 20 streams of training text read in windows of 35 tokens with
the state carried, plain SGD at lr 20 with gradients clipped at 0.25, the learning rate divided
by 4 after an epoch that does not improve the validation loss, the best model on the test split
at the end. fp32, as the example runs on a CPU. Prints one line per epoch and, last, one JSON
line: {"val_ppl": ..., "test_ppl": ..., "epochs": ..., "wall_s": ...}, wall from the start of
this process.
"""

import time

START = time.time()  # before the imports: a user waits for them too

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


def read_splits(folder: Path) -> tuple[dict[str, torch.Tensor], int]:
    """Token ids of each split; the vocabulary in order of first appearance, as the example builds it."""
    vocab: dict[str, int] = {}
    splits = {}
    for split in ("train", "valid", "test"):
        ids = []
        with open(folder / f"ptb.{split}.txt", encoding="utf-8") as f:
            for line in f:
                for word in line.split() + ["<eos>"]:
                    ids.append(vocab.setdefault(word, len(vocab)))
        splits[split] = torch.tensor(ids, dtype=torch.long)
    return splits, len(vocab)


def streams(ids: torch.Tensor, n: int) -> torch.Tensor:
    """(length, n): the text cut into n contiguous streams, read side by side."""
    length = len(ids) // n
    return ids[: length * n].view(n, length).t().contiguous()


class WordLSTM(nn.Module):
    def __init__(self, vocab: int, width: int = 200, layers: int = 2, dropout: float = 0.2):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, width)
        self.rnn = nn.LSTM(width, width, layers, dropout=dropout)
        self.decoder = nn.Linear(width, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        self.decoder.weight = self.encoder.weight  # --tied

    def forward(self, x: torch.Tensor, state):
        out, state = self.rnn(self.drop(self.encoder(x)), state)
        return F.log_softmax(self.decoder(self.drop(out)), dim=-1), state


def zero_state(model: WordLSTM, n: int):
    shape = (model.rnn.num_layers, n, model.rnn.hidden_size)
    return torch.zeros(shape), torch.zeros(shape)


@torch.no_grad()
def mean_loss(model: WordLSTM, data: torch.Tensor, bptt: int, max_batches: int | None = None) -> float:
    """The mean loss per token of `data` (its first max_batches windows when given)."""
    if max_batches:
        data = data[: max_batches * bptt + 1]
    model.eval()
    state, total = zero_state(model, data.shape[1]), 0.0
    for i in range(0, len(data) - 1, bptt):
        x, y = data[i : i + bptt], data[i + 1 : i + 1 + bptt]
        x = x[: len(y)]
        logp, state = model(x, state)
        total += F.nll_loss(logp.flatten(0, 1), y.flatten(), reduction="sum").item()
    model.train()
    return total / ((len(data) - 1) * data.shape[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument(
        "--max-batches", type=int, default=None, help="fewer batches an epoch and in each evaluation, for a quick check"
    )
    parser.add_argument("--data-dir", default=None, help="ptb.{train,valid,test}.txt (default: $GENKIT_DATA_DIR/ptb)")
    parser.add_argument("--seed", type=int, default=1111)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    folder = Path(args.data_dir or Path(os.environ.get("GENKIT_DATA_DIR", "data")) / "ptb")
    splits, vocab = read_splits(folder)
    bptt, lr, clip = 35, 20.0, 0.25
    train, val, test = streams(splits["train"], 20), streams(splits["valid"], 10), streams(splits["test"], 10)
    model = WordLSTM(vocab)
    best, best_state = math.inf, None
    for epoch in range(1, args.epochs + 1):
        t0 = time.time()
        state = zero_state(model, 20)
        for b, i in enumerate(range(0, len(train) - 1, bptt)):
            if args.max_batches and b >= args.max_batches:
                break
            x, y = train[i : i + bptt], train[i + 1 : i + 1 + bptt]
            x = x[: len(y)]
            state = tuple(s.detach() for s in state)  # truncated backpropagation through time
            model.zero_grad()
            logp, state = model(x, state)
            F.nll_loss(logp.flatten(0, 1), y.flatten()).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
        val_loss = mean_loss(model, val, bptt, args.max_batches)
        print(f"epoch {epoch}: {time.time() - t0:.1f} s, lr {lr:g}, val ppl {math.exp(val_loss):.2f}", flush=True)
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(model.state_dict())
        else:
            lr /= 4.0
    model.load_state_dict(best_state)
    test_loss = mean_loss(model, test, bptt, args.max_batches)
    result = {"val_ppl": math.exp(best), "test_ppl": math.exp(test_loss), "epochs": args.epochs}
    print(json.dumps({**result, "wall_s": round(time.time() - START, 2)}), flush=True)


if __name__ == "__main__":
    main()
