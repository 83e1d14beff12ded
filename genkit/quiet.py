"""Silence library chatter that tells a genkit user nothing about their run."""

import logging
import os
import warnings


class _DropMessages(logging.Filter):
    def __init__(self, *prefixes: str):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_libraries() -> None:
    # an advertisement printed by every Trainer without Lightning's cloud logger
    # (and the note that genkit's own model summary replaces Lightning's)
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        _DropMessages("💡 Tip", "Trainer already configured with model summary")
    )
    # the run directory always holds .hydra/ and genkit.log beside metrics.csv; the CSV logger appends
    warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")
    # genkit feeds InceptionScore a few thousand 10-class logits, not Inception's 1008
    warnings.filterwarnings("ignore", message=r"Metric `InceptionScore` will save all extracted features")
    # on a machine with SLURM installed, Lightning warns about srun even outside any job
    if "SLURM_JOB_ID" not in os.environ:
        warnings.filterwarnings("ignore", message=r"The `srun` command is available on your system")
    # Lightning's own use of a torch API that torch deprecated
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
    # the GAN (manual optimization) is checkpointed after both networks stepped: the state that a
    # resume at the next step needs, which is what Lightning's warning asks the user to check
    warnings.filterwarnings("ignore", message=r"Using ModelCheckpoint with manual optimization")
    # shards (genkit.data.shards): LitData's dataset gives each DataLoader worker its own part, so
    # its length is exact, which is what Lightning's warning about iterable datasets asks
    warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")
    # Hugging Face datasets draws a bar per split it prepares; genkit logs what it tokenised
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
