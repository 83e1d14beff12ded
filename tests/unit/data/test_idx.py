import gzip

import numpy as np
import pytest
import torch

from genkit.data.idx import read_idx, write_idx


@pytest.mark.parametrize("name", ["x-idx3-ubyte.gz", "x-idx3-ubyte"])
def test_roundtrip_gz_and_raw(tmp_path, name):
    values = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, values)
    out = read_idx(tmp_path / name)
    assert out.dtype == torch.uint8 and out.shape == (2, 3, 4)
    assert torch.equal(out, torch.from_numpy(values))


def test_big_endian_int32(tmp_path):
    values = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / "v.idx", values)
    assert read_idx(tmp_path / "v.idx").tolist() == [1, -2, 70000]


def test_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04" + bytes(10))
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "t.gz", np.zeros((4, 5), dtype=np.uint8))
    raw = gzip.decompress((tmp_path / "t.gz").read_bytes())
    (tmp_path / "short").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")
