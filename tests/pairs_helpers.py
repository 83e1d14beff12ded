"""Tiny prompt -> completion tasks (data=pairs) for the tests: written into a test's folder."""

import json
from pathlib import Path


def write_tiny_pairs(folder: Path, task: str = "labels", n_train: int = 60, n_eval: int = 12) -> Path:
    """train/val/test.jsonl of a tiny prompt -> completion task: `labels` (three colours named by
    their first letters, a closed label set) or `text` (a short phrase per word, free text)."""
    folder.mkdir(parents=True, exist_ok=True)
    words = ["red", "green", "blue"] if task == "labels" else ["cat", "dog", "sun", "moon", "tree"]
    for split, n in (("train", n_train), ("val", n_eval), ("test", n_eval)):
        with open(folder / f"{split}.jsonl", "w") as f:
            for i in range(n):
                w = words[i % len(words)]
                record = (
                    {"prompt": f"item {i} starts {w[:2]}", "completion": w}
                    if task == "labels"
                    else {"prompt": f"{w} {i}:", "completion": f" a word for {w} number {i % 3}"}
                )
                f.write(json.dumps(record) + "\n")
    return folder


def tiny_pairs_run(tmp_path: Path, task: str = "labels") -> list[str]:
    """Overrides for a 1-layer GPT on a tiny pairs task written into tmp_path: seconds per run."""
    folder = write_tiny_pairs(tmp_path / f"pairs_{task}", task)
    return [
        "model=lm",
        "data=pairs",
        f"data.path={folder}",
        "data.vocab_size=300",
        "data.block_size=24",
        "data.batch_size=8",
        "model.net.n_layer=1",
        "model.net.n_embd=32",
        "trainer.max_steps=2",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.precision=32-true",
    ]
