"""`genkit sample` refuses, in one paragraph, a temperature that is not a finite number (as it
refuses nan and negatives) and a prompt that is not Unicode text: the rules are genkit.options'
number and TEXT, which `genkit serve` checks its fields with too."""

import pytest

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_sample_refuses_a_temperature_that_is_not_finite(tmp_path, tiny_gpt_checkpoint, value):
    out = cli_in_process("sample", f"ckpt={tiny_gpt_checkpoint}", "n=1", f"temperature={value}", cwd=tmp_path)
    assert_one_paragraph(out, ["temperature=", "is not valid for `genkit sample`", "a finite number of at least 0"])


def test_sample_takes_a_large_finite_temperature(tmp_path, tiny_gpt_checkpoint):
    """The bound is finiteness, not size: temperature=1e6 is near uniform sampling, and is sampled."""
    out_file = tmp_path / "out.txt"
    out = cli_in_process("sample", f"ckpt={tiny_gpt_checkpoint}", "n=1", "temperature=1e6", "max_new_tokens=4",
                         f"out={out_file}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert out_file.is_file()


def test_sample_refuses_a_prompt_that_is_not_unicode(tmp_path, tiny_gpt_checkpoint):
    """Bytes that are not UTF-8 on a command line reach Python as lone surrogates (\\udcff); quoted,
    Hydra passes them on, and the tokenizer failed with a traceback (TypeError)."""
    out = cli_in_process("sample", f"ckpt={tiny_gpt_checkpoint}", "n=1", "prompt='caf\udce9'", cwd=tmp_path)
    assert_one_paragraph(out, ["prompt='caf\\udce9' is not valid", "must be text, in UTF-8", "lone surrogate"])
