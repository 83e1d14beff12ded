"""Bad input through the real CLI: one paragraph that says what was wrong, never a traceback."""

import pytest

from tests.helpers import TINY_IMAGE_RUN, cli_in_process

# (overrides, words the message must contain)
CASES = [
    (["model=nope"], ["unknown model 'nope'", "gan", "vae", "diffusion", "gpt"]),
    (["data=nope"], ["unknown data 'nope'", "mnist", "tinyshakespeare"]),
    (["model=gpt", "data=mnist"], ["generates text", "mnist holds images"]),
    (["model._target_=mypkg.NoSuchModel"], ["cannot be imported", "PYTHONPATH"]),
    (["model=gan", "data.format=png"], ["data.format='png'", "idx"]),
    (["model=gan", "data.splits.test=nope", "test=true"], ["nope-images", "data.splits"]),
    (["model=gan", "data.max_device_batch=8"], ["cannot accumulate", "data.max_device_batch"]),
    (["model=vae", "data.batch_size=16", "data.max_device_batch=6"], ["does not split", "accumulation"]),
]


@pytest.mark.parametrize("overrides,words", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_one_paragraph(tmp_path, tiny_data_root, overrides, words):
    out = cli_in_process(
        "train",
        *TINY_IMAGE_RUN,
        *overrides,
        cwd=tmp_path,
        env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )
    message = " ".join(out.stderr.split())
    assert out.returncode == 2, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 8, out.stderr
    for word in words:
        assert word in message, (word, message)
