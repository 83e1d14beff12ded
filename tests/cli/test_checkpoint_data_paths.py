"""A checkpoint never chooses which of your files genkit reads: a data path stored in it is used
only if `genkit train` on this machine wrote it (signed, genkit.checkpoints.provenance), else the
user passes data_path=. And a checkpoint that names the standard library is never to be trusted."""

import sys

import torch

from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import cli_in_process

OPENED: list[str] = []


def _audit(event: str, args) -> None:
    if event == "open" and args and isinstance(args[0], str | bytes) and "secret" in str(args[0]):
        OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # for the life of the test process; it only records opens of *secret* files


def strangers_copy(ckpt, dest, **data) -> str:
    """The checkpoint as a stranger could ship it: its stored data config edited, no stamp of ours."""
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint["genkit"]["config"]["data"].update(data)
    checkpoint["genkit"].pop("data_stamp", None)
    torch.save(checkpoint, dest)
    return str(dest)


def test_eval_never_opens_a_file_that_a_strangers_checkpoint_names(tmp_path, tiny_gpt_checkpoint):
    secret = tmp_path / "secret_passwords.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 200)
    ckpt = strangers_copy(tiny_gpt_checkpoint, tmp_path / "stranger.ckpt", path=str(secret), unknown_chars="drop")
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    OPENED.clear()
    out = cli_in_process("eval", f"ckpt={ckpt}", cwd=tmp_path, env=env)
    assert_one_paragraph(out, ["data.path=", "secret_passwords.txt", "not written by `genkit train` on this machine",
                               "data_path=<your copy"])  # fmt: skip
    sampled = cli_in_process("sample", f"ckpt={ckpt}", "n=1", f"out={tmp_path / 's.txt'}", cwd=tmp_path, env=env)
    assert sampled.returncode == 0, sampled.stderr[-3000:]
    assert OPENED == []
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.bin"))
    # the user names their own copy of the data: it is read, and scored
    corpus = tmp_path / "my_corpus.txt"
    corpus.write_text("\n".join(f"line {i % 37} of a small corpus for quick runs" for i in range(300)))
    out = cli_in_process("eval", f"ckpt={ckpt}", f"data_path={corpus}", f"out={tmp_path / 'e.json'}", cwd=tmp_path,
                         env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert OPENED == []


def test_eval_of_a_checkpoint_trained_here_reads_its_own_data(tmp_path, tiny_gpt_checkpoint):
    out = cli_in_process("eval", f"ckpt={tiny_gpt_checkpoint}", f"out={tmp_path / 'e.json'}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]


def test_a_stamp_does_not_travel_to_another_path(tmp_path, tiny_gpt_checkpoint):
    """Our own signed checkpoint, its data.path edited: the stamp no longer matches."""
    checkpoint = torch.load(tiny_gpt_checkpoint, weights_only=True)
    assert checkpoint["genkit"]["data_stamp"]
    checkpoint["genkit"]["config"]["data"]["path"] = str(tmp_path / "secret_other.txt")
    torch.save(checkpoint, tmp_path / "edited.ckpt")
    out = cli_in_process("eval", f"ckpt={tmp_path / 'edited.ckpt'}", cwd=tmp_path)
    assert_one_paragraph(out, ["secret_other.txt", "data_path="])


def test_a_checkpoint_naming_the_standard_library_gets_no_advice_to_trust_it(tmp_path, tiny_gan_checkpoint):
    for target in ("os.system", "builtins.eval"):
        checkpoint = torch.load(tiny_gan_checkpoint, weights_only=True)
        checkpoint["genkit"]["config"]["model"]["generator"] = {"_target_": target, "command": "touch /tmp/x"}
        torch.save(checkpoint, tmp_path / "altered.ckpt")
        out = cli_in_process("sample", f"ckpt={tmp_path / 'altered.ckpt'}", cwd=tmp_path)
        assert_one_paragraph(out, [f"`{target}`", "was altered to run code"])
        assert "trusted_targets=[" not in out.stderr
