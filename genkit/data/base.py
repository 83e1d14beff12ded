"""The contract of a genkit data set: what train, sample, eval and bench may ask of a data module.

A data set is one LightningDataModule subclass of `GenkitDataModule` plus one config
(`configs/data/<name>.yaml`, or a `data/` folder of the user's own config dir). It declares:

- `modality`: "images" (batches of (images in [-1, 1], labels)) or "text" (batches of
  (token ids, next token ids)); a model trains only on data of its own modality.
- `name`, `batch_size` (the global batch) and its loaders. Training loaders come from
  `training_loader()`, which makes them resumable mid-epoch (see genkit.data.batching).
- `sample_input(name, n, options)`: the inputs a model asks for to generate
  (`GenerativeModel.data_inputs`): e.g. `prompt_ids` from text, `images` to reconstruct.
- `write_samples(samples, path)` and `samples_as_text(samples)`: how generated batches are
  written (an image grid PNG, decoded text) and shown on the terminal.
- `state_dict()` / `save_artifacts(run_dir)`: what the data module keeps in every checkpoint and
  beside it (a text data set's tokenizer), so that a checkpoint samples with no data present.
- `reference_data()`: whole splits as tensors, for the hand-written loops of `genkit bench`.
- `throughput_unit` and `items_per_sample`: what `genkit bench` counts per second.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from genkit.data.batching import ResumableLoader, ShuffledBatches, eval_indices, keep_batch, per_process, train_batches
from genkit.errors import GenkitError


class GenkitDataModule(L.LightningDataModule):
    modality: ClassVar[str] = "images"
    #: what one item of a batch holds, for throughput: "samples" (images) or "tokens"
    throughput_unit: ClassVar[str] = "samples"
    #: the file suffix of written samples
    sample_suffix: ClassVar[str] = ".png"
    #: inputs this data set can hand a model for generation
    sample_inputs: ClassVar[tuple[str, ...]] = ()
    #: options of `genkit sample` that this data set reads to make them (text: the prompt)
    input_options: ClassVar[tuple[str, ...]] = ()

    name: str
    batch_size: int
    _train_batches: ShuffledBatches | None = None

    # ---- training batches, resumable ----------------------------------------------------------

    def training_loader(self, dataset: Dataset, batch_size: int, seed: int, num_workers: int = 0) -> ResumableLoader:
        """Shuffled batches of `batch_size` (this process's share) that resume mid-epoch."""
        self._train_batches = train_batches(self.trainer, len(dataset), batch_size, seed)
        if len(self._train_batches) == 0:
            raise GenkitError(
                f"data.batch_size={self.batch_size} is more than the {len(dataset)} training examples of {self.name} "
                f"(per process); lower data.batch_size."
            )
        return ResumableLoader(
            dataset,
            batch_sampler=self._train_batches,
            num_workers=num_workers,
            collate_fn=keep_batch,
            persistent_workers=num_workers > 0,
        )

    def evaluation_loader(self, dataset: Dataset, batch_size: int, num_workers: int = 0) -> DataLoader:
        """Every item once, split over the processes (no padding), in global batches of batch_size."""
        return DataLoader(
            dataset,
            batch_size=per_process(self.trainer, batch_size, accumulated=False),
            sampler=eval_indices(self.trainer, len(dataset)),
            num_workers=num_workers,
            collate_fn=keep_batch,
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # called once per batch, as it reaches the model: counts what training consumed
        if self.trainer is not None and self.trainer.training and self._train_batches is not None:
            self._train_batches.consumed()
        return batch

    # ---- generation -------------------------------------------------------------------------

    def sample_input(self, name: str, n: int, options: Mapping[str, Any]) -> Any:
        raise GenkitError(
            f"The model asks the {self.name} data for {name!r} to generate from, but this data set gives "
            f"{', '.join(self.sample_inputs) or 'nothing'}; pick data the model can use."
        )

    def write_samples(self, samples: torch.Tensor, path: str | Path) -> Path:
        raise NotImplementedError

    def save_artifacts(self, run_dir: Path) -> None:
        """Write what a person needs beside the checkpoints to use the run (a text model's tokenizer)."""

    def samples_as_text(self, samples: torch.Tensor) -> list[str]:
        """Generated samples as text to print; nothing for images."""
        return []

    # ---- benchmarks -------------------------------------------------------------------------

    def items_per_sample(self) -> int:
        return 1

    def reference_data(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} gives no data to hand-written loops")


def with_suffix(path: str | Path, suffix: str) -> Path:
    """The user's file name as given, or a stem with the data's suffix."""
    path = Path(path)
    return path if path.suffix else path.with_suffix(suffix)
