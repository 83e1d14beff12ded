import torch
from hydra.utils import instantiate

from tests.helpers import SHARED_DATA, make_cfg, needs_shared


def test_split_range_and_shapes(tmp_path, tiny_data_root):
    cfg = make_cfg(tmp_path, f"data.root={tiny_data_root}", "data.val_size=16", "data.batch_size=8")
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (80, 16, 32)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.shape == (8,)
    assert x.min() >= -1 and x.max() <= 1 and {x.min().item(), x.max().item()} == {-1.0, 1.0}


def test_split_is_fixed_by_seed(tmp_path, tiny_data_root):
    def val_labels(seed):
        cfg = make_cfg(tmp_path, f"data.root={tiny_data_root}", "data.val_size=16", f"data.split_seed={seed}")
        dm = instantiate(cfg.data)
        dm.setup("fit")
        return dm.val_set.images

    assert torch.equal(val_labels(1), val_labels(1))
    assert not torch.equal(val_labels(1), val_labels(2))


def test_raw_files_work_like_gz(tmp_path, tiny_data_root):
    import gzip

    folder = tiny_data_root / "mnist"
    for gz in folder.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    cfg = make_cfg(tmp_path, f"data.root={tiny_data_root}", "data.val_size=16")
    dm = instantiate(cfg.data)
    dm.setup()
    assert len(dm.test_set) == 32


def test_root_falls_back_to_env_then_cache(tmp_path, monkeypatch):
    from genkit.data.download import default_data_root, resolve_root

    monkeypatch.setenv("GENKIT_DATA_DIR", str(tmp_path / "env"))
    assert resolve_root(None) == tmp_path / "env"
    assert resolve_root(str(tmp_path / "explicit")) == tmp_path / "explicit"
    monkeypatch.delenv("GENKIT_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_root(None) == default_data_root() == tmp_path / "cache" / "genkit" / "data"


@needs_shared("mnist")
def test_shared_mnist(tmp_path):
    cfg = make_cfg(tmp_path, f"data.root={SHARED_DATA}")
    dm = instantiate(cfg.data)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (55000, 5000, 10000)
    assert dm.train_set.images.shape[1:] == (1, 28, 28)
    assert set(dm.test_set.labels.unique().tolist()) == set(range(10))


@needs_shared("fashion-mnist")
def test_shared_fashion_mnist(tmp_path):
    cfg = make_cfg(tmp_path, "data=fashion_mnist", f"data.root={SHARED_DATA}")
    dm = instantiate(cfg.data)
    dm.setup()
    # the published training-set mean of Fashion-MNIST is 0.2860
    mean = (dm.train_set.images.float().mean() / 255).item()
    assert abs(mean - 0.2860) < 0.002
