"""The download path, against a real HTTP server on 127.0.0.1."""

import hashlib

import pytest
from hydra.utils import instantiate

from genkit.data.download import download, ensure_files
from genkit.errors import ChecksumError, DataUnavailableError
from tests.helpers import make_cfg, write_tiny_image_set


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_good_file_lands(server, tmp_path):
    served, url = server
    (served / "a.bin").write_bytes(b"genkit" * 1000)
    dest = download(url + "a.bin", tmp_path / "out" / "a.bin", sha(served / "a.bin"))
    assert dest.read_bytes() == b"genkit" * 1000
    assert [p.name for p in dest.parent.iterdir()] == ["a.bin"]


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path):
    served, url = server
    (served / "a.bin").write_bytes(b"tampered")
    out = tmp_path / "out"
    with pytest.raises(ChecksumError, match="SHA-256"):
        download(url + "a.bin", out / "a.bin", "0" * 64)
    assert list(out.iterdir()) == []


def test_second_mirror_used_when_first_fails(server, tmp_path):
    served, url = server
    (served / "a.bin").write_bytes(b"x")
    paths = ensure_files(
        tmp_path / "ds", {"a.bin": sha(served / "a.bin")}, ["http://127.0.0.1:9/", url], dataset="demo"
    )
    assert paths["a.bin"].read_bytes() == b"x"


def test_offline_error_names_folder_and_files(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        ensure_files(tmp_path / "ds", {"f1.gz": "0" * 64, "f2.gz": "0" * 64}, ["http://127.0.0.1:9/"], dataset="demo")
    message = str(err.value)
    assert str(tmp_path / "ds") in message and "f1.gz, f2.gz" in message and "GENKIT_DATA_DIR" in message


def test_datamodule_downloads_a_whole_image_set(server, tmp_path):
    served, url = server
    write_tiny_image_set(served)
    files = {p.name: sha(p) for p in served.iterdir()}
    root = tmp_path / "root"
    cfg = make_cfg(tmp_path, f"data.root={root}", "data.val_size=16")
    dm = instantiate(cfg.data, files=files, mirrors=[url])
    dm.prepare_data()
    dm.setup()
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(files)
    assert len(dm.test_set) == 32
