"""Bad records (data=pairs) and pictures (data=image_folder) through the real CLI: the options that
bound what is read (data.max_record_bytes, data.max_pixels) and records that are not text, each one
paragraph naming the value, the file or the line, never a traceback."""

import json

import pytest

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import TINY_IMAGE_RUN, cli_in_process

# (overrides, words the message must contain): @dir is a good folder of records; @null, @number
# and @long the same with one record, the third, changed (see test_bad_records_are_one_paragraph)
RECORDS_CASES = [
    (["data.path=@dir", "data.max_record_bytes=0"], ["data.max_record_bytes=0", "at least 1", "16 MiB"]),
    (["data.path=@dir", "data.max_record_bytes=-5"], ["data.max_record_bytes=-5", "whole number of bytes"]),
    (["data.path=@dir", "data.max_record_bytes=lots"], ["data.max_record_bytes='lots'", "whole number of bytes"]),
    (["data.path=@dir", "data.max_record_bytes=1.5"], ["data.max_record_bytes=1.5", "whole number of bytes"]),
    (["data.path=@long", "data.max_record_bytes=200"],
     ["train.jsonl line 3 is longer than data.max_record_bytes=200 bytes", "raise data.max_record_bytes"]),
    (["data.path=@null"], ["train.jsonl line 3: the 'prompt' field is null", "fill it in"]),
    (["data.path=@number"], ["train.jsonl line 3: the 'completion' field is a number (3)", '"completion": "3"']),
]  # fmt: skip


@pytest.mark.parametrize("overrides,words", RECORDS_CASES, ids=[" ".join(c[0]) for c in RECORDS_CASES])
def test_bad_records_are_one_paragraph(tmp_path, overrides, words):
    from tests.pairs_helpers import tiny_pairs_run, write_tiny_pairs

    run = [o for o in tiny_pairs_run(tmp_path) if not o.startswith("data.path=")]
    changed = {"@null": {"prompt": None, "completion": "red"}, "@number": {"prompt": "item", "completion": 3},
               "@long": {"prompt": "x" * 500, "completion": "red"}}  # fmt: skip
    where = {"@dir": write_tiny_pairs(tmp_path / "dir")}
    lines = (where["@dir"] / "train.jsonl").read_text().splitlines()
    for name, record in changed.items():
        where[name] = write_tiny_pairs(tmp_path / name[1:])
        (where[name] / "train.jsonl").write_text("\n".join([*lines[:2], json.dumps(record), *lines[2:]]) + "\n")
    for name, folder in where.items():
        overrides = [o.replace(name, str(folder)) if o == f"data.path={name}" else o for o in overrides]
    out = cli_in_process("train", *run, *overrides, cwd=tmp_path)
    assert_one_paragraph(out, words)


# (overrides, words the message must contain), on a good folder of pictures
PICTURES_CASES = [
    (["data.max_pixels=0"], ["data.max_pixels=0", "at least 1", "89478485"]),
    (["data.max_pixels=-100"], ["data.max_pixels=-100", "whole number of pixels"]),
    (["data.max_pixels=huge"], ["data.max_pixels='huge'", "whole number of pixels"]),
    (["data.max_pixels=1e9"], ["data.max_pixels=1000000000.0", "whole number of pixels"]),
    (["data.max_pixels=10"], ["None of the 24 picture files", "over data.max_pixels=10", "raise it"]),
    (["data.augment=[rotate]"], ["data.augment=[rotate] is not a list of augmentations", "[hflip]", "[crop]"]),
    (["data.augment=[hflip,7]"], ["data.augment=[hflip, 7]", "data.augment=[] (the default)"]),
    (["data.augment=7"], ["data.augment=7 is not a list of augmentations", "[hflip,crop]"]),
    (["data.num_proc=0"], ["data.num_proc=0", "at least 1", "one per core"]),
    (["data.num_proc=two"], ["data.num_proc='two'", "whole number", "decode the pictures"]),
    (["data.cache_dir=/dev/null/cache"], ["Could not write the decoded pictures", "/dev/null", "data.cache_dir"]),
]


@pytest.mark.parametrize("overrides,words", PICTURES_CASES, ids=[" ".join(c[0]) for c in PICTURES_CASES])
def test_bad_picture_limits_are_one_paragraph(tmp_path, overrides, words):
    from PIL import Image

    for i in range(24):
        Image.new("RGB", (16, 12), (10 * i, 40, 200)).save(tmp_path / f"{i:02d}.png")
    out = cli_in_process(
        "train", "model=gan", "data=image_folder", f"data.path={tmp_path}", f"data.cache_dir={tmp_path / 'cache'}",
        *TINY_IMAGE_RUN, "data.val_size=4", *overrides, cwd=tmp_path,
    )  # fmt: skip
    assert_one_paragraph(out, words)
