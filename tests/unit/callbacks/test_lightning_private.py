"""The private Lightning members genkit relies on (genkit.callbacks.lightning_private) still exist
with the signatures genkit calls and overrides: a Lightning upgrade that changes one fails here."""

import inspect

import lightning as L
import pytest
from lightning.pytorch.callbacks import ModelCheckpoint

from genkit.callbacks.lightning_private import OVERRIDDEN, batches_done_this_epoch, last_step_saved

# name -> the parameters genkit passes (self first)
CALLED = {
    "_save_last_checkpoint": ["self", "trainer", "monitor_candidates"],
    "_monitor_candidates": ["self", "trainer"],
}


@pytest.mark.parametrize("name", CALLED)
def test_the_checkpoint_methods_genkit_calls_take_what_it_passes(name):
    assert list(inspect.signature(getattr(ModelCheckpoint, name)).parameters) == CALLED[name]


@pytest.mark.parametrize("cls,name", [(cls, name) for cls, names in OVERRIDDEN.items() for name in names])
def test_the_methods_genkit_overrides_exist_with_its_signature(cls, name):
    assert list(inspect.signature(getattr(cls, name)).parameters) == ["self", "trainer"]


def test_the_attributes_genkit_reads_exist_on_a_real_trainer(tmp_path):
    assert last_step_saved(ModelCheckpoint(dirpath=tmp_path)) == 0  # nothing written before step 0
    trainer = L.Trainer(default_root_dir=tmp_path, logger=False, enable_checkpointing=False, accelerator="cpu")
    assert batches_done_this_epoch(trainer) == 0
