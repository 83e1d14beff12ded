"""Each option is declared once (genkit.options.Option): the composed config, --help and the
checks are made from the declarations, so none can drift from another."""

import pytest
import yaml

from genkit.commands import bench, evaluate, export, sample
from genkit.commands.command_options import all_options, family_options
from tests.helpers import cli_in_process

COMMANDS = {"sample": sample.OPTIONS, "eval": evaluate.OPTIONS, "export": export.OPTIONS}


@pytest.mark.parametrize("command", COMMANDS)
def test_the_config_holds_exactly_the_declared_options(tmp_path, command):
    out = cli_in_process(command, "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    composed = yaml.safe_load(out.stdout)
    groups = {"paths", "data"}
    assert set(composed) - groups == set(all_options(command, COMMANDS[command]))


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_declared_option_with_its_help_line(tmp_path, command):
    out = cli_in_process(command, "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    declared = dict(COMMANDS[command])
    for options in family_options(command).values():
        declared.update(options)
    for key, option in declared.items():
        assert option.usage(key) in out.stdout and option.help in out.stdout, key


def test_families_that_share_an_option_declare_one_default():
    """`steps` is the VAE's and diffusion's: the config holds one value, so one default."""
    families = family_options("sample")
    assert "steps" in families["VAE"] and "steps" in families["Diffusion"]
    assert all_options("sample", sample.OPTIONS)["steps"].default is None


def test_bench_checks_its_own_options_by_their_rules(tmp_path):
    out = cli_in_process("bench", "steps=0", "debug=fast", cwd=tmp_path)
    assert out.returncode == 2 and "steps=0 is not valid for `genkit bench`" in out.stderr, out.stderr
    assert set(bench.OPTIONS) == {"steps", "warmup", "rounds", "compare", "out"}
