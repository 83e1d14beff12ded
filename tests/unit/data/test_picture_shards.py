"""data=image_shards: pictures written as LitData shards by `genkit prepare`, streamed by every
training process, resumable mid-epoch (genkit/data/picture_shards.py)."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from genkit.data.picture_shards import ImageShardsDataModule, as_uint8, write_shards
from genkit.data.shards import META, write_meta
from genkit.errors import GenkitError
from tests.helpers import make_cfg
from tests.unit.data.test_image_folder import CLASSES, datamodule, mixed_folder

SIZE = 16


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> tuple[Path, object]:
    """36 pictures of 3 classes (32 to train on, 4 to validate) written as shards, and the
    image_folder data module they were written from."""
    tmp = tmp_path_factory.mktemp("shards")
    folder = mixed_folder(tmp / "shapes", n=35)
    _, source = datamodule(tmp, folder, f"data.image_size={SIZE}", "data.val_size=4")
    out = tmp / "out"
    meta = write_shards(source, out)
    write_meta(out, {"kind": "pictures", "data": source.name, **meta})
    return out, source


def module(path, **overrides) -> ImageShardsDataModule:
    args = {"image_size": SIZE, "channels": 3, "num_classes": 3, "class_names": sorted(CLASSES), "batch_size": 8,
            "seed": 7, **overrides}  # fmt: skip
    return ImageShardsDataModule(path, **args)


def training():
    """What the data module asks of Lightning's trainer while it trains, on one process."""
    return SimpleNamespace(training=True, global_rank=0, world_size=1, accumulate_grad_batches=1)


def as_bytes(images: torch.Tensor) -> list[bytes]:
    return [picture.numpy().tobytes() for picture in images]


def reaching_the_model(dm: ImageShardsDataModule, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """What Lightning does with a training batch: counts it as consumed, then scales (augments) it."""
    return dm.on_after_batch_transfer(dm.on_before_batch_transfer(batch, 0), 0)


def test_uint8_pictures_survive_the_scaling_every_image_set_serves():
    values = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(as_uint8(values.float() / 127.5 - 1.0), values)


def test_an_epoch_streams_every_training_picture_once(tmp_path, shards):
    out, source = shards
    described = json.loads((out / META).read_text())
    assert described["splits"] == {"train": 32, "val": 4, "test": 4} and described["class_names"] == sorted(CLASSES)
    # the config reads the pictures' facts from the shards when it is composed
    cfg = make_cfg(tmp_path, "data=image_shards", f"data.path={out}", "data.batch_size=8")
    assert (cfg.data.image_size, cfg.data.channels, cfg.data.num_classes) == (SIZE, 3, 3)
    dm = instantiate(cfg.data, _convert_="partial")
    dm.prepare_data()
    dm.setup()
    dm.trainer = training()
    seen, labels = [], []
    for batch in dm.train_dataloader():
        assert batch["image"].dtype == torch.uint8  # crosses to the accelerator as uint8
        x, y = reaching_the_model(dm, batch)
        assert x.shape == (8, 3, SIZE, SIZE) and x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
        seen += as_bytes(as_uint8(x))
        labels += y.tolist()
    pictures, truth = source.train_set.pictures(range(32)), source.train_set.labels
    assert sorted(seen) == sorted(as_bytes(pictures))
    by_picture = dict(zip(as_bytes(pictures), truth.tolist(), strict=True))
    assert labels == [by_picture[picture] for picture in seen]
    # validation and test: every picture once, in the order written; test is validation here
    for split in ("val", "test"):
        x, y = next(iter(getattr(dm, f"{split}_dataloader")()))
        old_x, old_y = source.val_set.__getitems__(range(4))
        assert torch.equal(x, old_x) and torch.equal(y, old_y)
    assert torch.equal(dm.sample_images(3), source.sample_images(3))
    assert len(torch.cat(list(dm.train_images(12, 8, seed=1)))) == 12


def test_a_resumed_loader_yields_the_rest_of_the_epoch_augmented_alike(shards):
    out, _ = shards
    whole = module(out, augment=["hflip"])
    whole.trainer = training()
    plain, uninterrupted = [], []
    for batch in whole.train_dataloader():
        plain.append(batch["image"].clone())
        uninterrupted.append(reaching_the_model(whole, batch))
    assert len(uninterrupted) == 4
    # some pictures mirrored, not all, and each batch its own draws
    mirrored = [
        [not torch.equal(as_uint8(a), b) for a, b in zip(x, p, strict=True)]
        for (x, _), p in zip(uninterrupted, plain, strict=True)
    ]
    assert 0 < sum(map(sum, mirrored)) < 32 and len({tuple(m) for m in mirrored}) > 1

    first = module(out, augment=["hflip"])
    first.trainer = training()
    batches = iter(first.train_dataloader())
    ahead = next(batches)
    k = 2
    for _ in range(k):  # Lightning fetches the next batch before the one in hand reaches the model
        in_hand, ahead = ahead, next(batches)
        reaching_the_model(first, in_hand)
    state = first._train_batches.state_dict()

    resumed = module(out, augment=["hflip"])
    resumed.trainer = training()
    loader = resumed.train_dataloader()
    loader.load_state_dict(state)
    rest = [reaching_the_model(resumed, batch) for batch in loader]
    assert len(rest) == len(uninterrupted) - k
    for (x, y), (old_x, old_y) in zip(rest, uninterrupted[k:], strict=True):
        assert torch.equal(x, old_x) and torch.equal(y, old_y)


def test_shards_of_another_kind_version_or_size_are_refused(tmp_path, shards):
    out, _ = shards
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    write_meta(tokens, {"kind": "tokens", "data": "wikitext2"})
    with pytest.raises(GenkitError, match="hold tokens.*data=text_shards"):
        module(tokens).prepare_data()
    newer = tmp_path / "newer"
    newer.mkdir()
    (newer / META).write_text(json.dumps({**json.loads((out / META).read_text()), "version": 99}))
    with pytest.raises(GenkitError, match="format version 99"):
        module(newer).prepare_data()
    with pytest.raises(GenkitError, match="image_size=16.*data.image_size=32"):
        module([out, out], image_size=32).prepare_data()


@pytest.mark.parametrize("mix", [[1, 0], [1, -2], [1, float("nan")], [1]])
def test_mix_weights_must_be_positive_one_per_source(shards, mix):
    out, _ = shards
    with pytest.raises(GenkitError, match="data.mix"):
        module([out, out], mix=mix)


def test_mixed_sources_stream_both_and_read_their_validation_one_after_the_other(shards):
    out, source = shards
    dm = module([out, out], mix=[1, 1])
    dm.setup()
    assert len(dm.val_set) == 8 and torch.equal(dm.val_set.images[4:], dm.val_set.images[:4])
    labels = np.concatenate([batch["label"].numpy() for batch in dm.train_dataloader()])
    assert len(labels) >= 8 and set(labels) <= {0, 1, 2}
