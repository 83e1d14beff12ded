"""genkit.atomic: a file is replaced whole or not at all, with the permissions of any new file."""

import os
import stat

import pytest

from genkit.atomic import atomic_path, write_bytes, write_text


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_target_is_replaced_whole(tmp_path):
    target = tmp_path / "status.json"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".status.json.") and tmp.name.endswith(".tmp")
        tmp.write_text("half")
        assert target.read_text() == "old"  # nothing is seen until the block ends
        tmp.write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_an_error_in_the_block_keeps_the_old_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="file write failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a checkpoint")
        raise RuntimeError("file write failed")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_an_interrupt_in_the_block_leaves_no_temporary_file_either(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "new.json"):
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_write_text_and_write_bytes(tmp_path):
    write_text(tmp_path / "a.json", '{"é": 1}\n')
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_text(tmp_path / "a.json", "{}")
    assert (tmp_path / "a.json").read_text(encoding="utf-8") == "{}"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_permissions_follow_the_umask_not_0600(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_text(tmp_path / "meta.json", "{}")
        (tmp_path / "plain.txt").write_text("{}")
        with atomic_path(tmp_path / "weights.pt") as tmp, open(tmp, "wb") as f:  # as torch.save writes
            f.write(b"x")
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "meta.json") == mode_of(tmp_path / "plain.txt") == 0o666 & ~umask
    assert mode_of(tmp_path / "weights.pt") == 0o666 & ~umask


def test_a_secret_keeps_the_mode_asked_for(tmp_path):
    write_text(tmp_path / "machine.key", "ab" * 32, mode=0o600)
    assert mode_of(tmp_path / "machine.key") == 0o600


def test_overwrite_false_keeps_the_first_file(tmp_path):
    target = tmp_path / "machine.key"
    write_text(target, "first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_text(target, "second", overwrite=False)
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["machine.key"]


def test_a_write_into_a_missing_folder_raises(tmp_path):
    with pytest.raises(FileNotFoundError):
        write_text(tmp_path / "missing" / "status.json", "{}")
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "missing" / "last.ckpt"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_shard_meta_has_the_permissions_of_the_shards_beside_it(tmp_path):
    """write_meta's file was a NamedTemporaryFile (0600) chmod-ed to 0644; now it is a new file like any."""
    from genkit.data.shards import META, write_meta

    write_meta(tmp_path, {"kind": "tokens"})
    (tmp_path / "chunk-0.bin").write_bytes(b"")
    assert mode_of(tmp_path / META) == mode_of(tmp_path / "chunk-0.bin")
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
