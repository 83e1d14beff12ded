"""data=cifar10 against a small archive of the official format, served on 127.0.0.1."""

import hashlib
import io
import pickle
import struct
import tarfile

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from genkit.checkpoints.files import config_of, load_checkpoint
from genkit.data.cifar import read_cifar_split
from genkit.errors import DataUnavailableError, GenkitError
from tests.helpers import TINY_IMAGE_RUN, cli_in_process, make_cfg

ARCHIVE = "cifar-10-python.tar.gz"
BATCHES = "cifar-10-batches-py"
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class Py2Pickler(pickle._Pickler):
    """Pickles as Python 2's cPickle wrote the official batches: every string a byte string
    (BINSTRING), which genkit reads back as bytes (b"data")."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_byte_string
    dispatch[bytes] = save_byte_string


def py2_pickle(obj) -> bytes:
    out = io.BytesIO()
    Py2Pickler(out, protocol=2).dump(obj)
    # numpy < 2 named its module numpy.core, as the official batches do
    return out.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_archive(path, n_train=40, n_test=20, seed=0, replace=None):
    """An archive in the official layout: five train batches of n_train random images, a test
    batch, batches.meta; `replace` maps member names to raw bytes to put there instead."""
    rng = np.random.default_rng(seed)
    batches = {}
    for name, n in [*((f"data_batch_{i}", n_train) for i in range(1, 6)), ("test_batch", n_test)]:
        batches[name] = {
            b"batch_label": f"{name} of 5",
            b"labels": rng.integers(0, 10, n).tolist(),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png" for i in range(n)],
        }
    members = {name: py2_pickle(batch) for name, batch in batches.items()}
    members["batches.meta"] = py2_pickle({b"label_names": CLASSES, b"num_cases_per_batch": n_train})
    members.update(replace or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        # out of name order, so that reading the batches in order is tested
        order = ["data_batch_4", "test_batch", "data_batch_2", "batches.meta", "data_batch_5", "data_batch_1"]
        for name in [*order, "data_batch_3"]:
            data = members[name]
            info = tarfile.TarInfo(f"{BATCHES}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return batches


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cifar_module(tmp_path, root, **kwargs):
    cfg = make_cfg(tmp_path, "data=cifar10", f"data.root={root}", "data.val_size=40")
    return instantiate(cfg.data, **kwargs)


def test_download_lands_and_reads_back_exactly(server, tmp_path):
    served, url = server
    batches = write_archive(served / ARCHIVE)
    root = tmp_path / "root"
    dm = cifar_module(tmp_path, root, files={ARCHIVE: sha(served / ARCHIVE)}, mirrors=[url])
    dm.prepare_data()
    assert [p.name for p in (root / "cifar-10").iterdir()] == [ARCHIVE]

    images, labels = read_cifar_split({ARCHIVE: root / "cifar-10" / ARCHIVE}, "data_batch")
    rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    assert images.shape == (200, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.tolist() == sum((batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)), [])
    # image 7 of data_batch_3: R plane first, then G, then B, each row-major 32x32
    row = batches["data_batch_3"][b"data"][7]
    image = images[2 * 40 + 7]
    assert image[0, 0, 1] == row[1] and image[0, 1, 0] == row[32] and image[0, 31, 31] == row[1023]
    assert image[1, 0, 0] == row[1024] and image[2, 5, 9] == row[2048 + 5 * 32 + 9]
    assert torch.equal(images.reshape(200, -1), torch.from_numpy(rows))

    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (160, 40, 20)
    test_rows = torch.from_numpy(batches["test_batch"][b"data"]).reshape(20, 3, 32, 32)
    assert torch.equal(dm.test_set.images, test_rows)
    assert dm.test_set.labels.tolist() == batches["test_batch"][b"labels"]
    x, _ = dm.test_set[3]
    assert torch.allclose(x, test_rows[3].float() / 127.5 - 1.0)
    # train + val hold the 200 training images, each once
    carved = torch.cat([dm.train_set.images, dm.val_set.images]).reshape(200, -1)
    assert sorted(map(bytes, carved.numpy())) == sorted(map(bytes, rows))
    assert dm.class_names == CLASSES and dm.class_index("ship") == 8


def test_wrong_checksum_is_refused_and_leaves_nothing(server, tmp_path):
    served, url = server
    write_archive(served / ARCHIVE)
    root = tmp_path / "root"
    dm = cifar_module(tmp_path, root, files={ARCHIVE: "0" * 64}, mirrors=[url])
    with pytest.raises(DataUnavailableError, match="wrong SHA-256, discarded"):
        dm.prepare_data()
    assert list((root / "cifar-10").iterdir()) == []


def test_offline_gives_one_paragraph_naming_folder_and_file(tmp_path):
    root = tmp_path / "root"
    out = cli_in_process(
        "train", "data=cifar10", f"data.root={root}", "data.mirrors=[http://127.0.0.1:9/]", cwd=tmp_path
    )
    assert out.returncode == DataUnavailableError.exit_code, out.stderr
    # the same message ensure_files gives for every data set, from the shipped config
    dm = cifar_module(tmp_path, root, mirrors=["http://127.0.0.1:9/"])
    with pytest.raises(DataUnavailableError) as err:
        dm.prepare_data()
    message = str(err.value)
    assert f"genkit: {message}\n" in out.stderr and "\n" not in message
    assert f"in {root / 'cifar-10'}, or" in message and f"Put the files {ARCHIVE} " in message
    assert "GENKIT_DATA_DIR" in message


@pytest.mark.parametrize(
    "module,name,payload",
    [("os", "system", "touch {marker}"), ("builtins", "exec", "open({marker!r}, 'w').close()")],
)
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, module, name, payload):
    marker = tmp_path / "ran"
    code = payload.format(marker=str(marker))
    # protocol 0 by hand: call module.name(code) on load
    gadget = f"c{module}\n{name}\n(V{code}\ntR.".encode()
    path = tmp_path / "root" / "cifar-10" / ARCHIVE
    write_archive(path, replace={"data_batch_2": gadget})
    with pytest.raises(GenkitError, match=rf"{ARCHIVE}:{BATCHES}/data_batch_2 asks to load `{module}\.{name}`"):
        read_cifar_split({ARCHIVE: path}, "data_batch")
    assert not marker.exists()
    # the same gadget, unrestricted, does run: the test above can fail
    pickle.loads(gadget)
    assert marker.exists()


def test_damaged_archive_says_which_file_to_delete(tmp_path):
    path = tmp_path / "root" / "cifar-10" / ARCHIVE
    write_archive(path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(GenkitError, match="cannot be read as CIFAR-10.*Delete the damaged file"):
        read_cifar_split({ARCHIVE: path}, "data_batch")


def test_gan_trains_on_served_cifar10_through_the_cli(server, tmp_path):
    served, url = server
    write_archive(served / ARCHIVE)
    root = tmp_path / "root"
    out = cli_in_process(
        "train",
        "model=gan",
        "data=cifar10",
        f"data.root={root}",
        f"data.mirrors=[{url}]",
        f"data.files={{{ARCHIVE}:{sha(served / ARCHIVE)}}}",
        *TINY_IMAGE_RUN,
        "data.val_size=40",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert [p.name for p in (root / "cifar-10").iterdir()] == [ARCHIVE]
    (last,) = tmp_path.rglob("last.ckpt")
    ckpt = load_checkpoint(last)
    assert ckpt["global_step"] == 4 and config_of(ckpt, "last.ckpt").data.channels == 3
