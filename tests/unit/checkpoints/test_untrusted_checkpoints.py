"""A checkpoint may come from a stranger: opening one never runs code or writes files it names,
and a checkpoint alone (no data on the machine) is enough to sample a text model."""

import shutil

import pytest
import torch

from genkit.checkpoints.trust import shipped_data_config
from genkit.commands.train import train
from genkit.training.restore import load_model
from tests.helpers import cli_in_process, make_cfg, tiny_text_run


def _foreign_data_set(config) -> None:
    config["data"].update(name="strangers_set", folder="strangers_set")


def craft(source, dest, edit) -> str:
    checkpoint = torch.load(source, weights_only=True)
    edit(checkpoint["genkit"]["config"])
    torch.save(checkpoint, dest)
    return str(dest)


def _set(path: str, value):
    def edit(config):
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


MARKER = "MARKER"
# (name, edit of the stored config, command, words the refusal must contain)
CASES = [
    ("open", lambda m: _set("model", {"_target_": "builtins.open", "file": m, "mode": "w"}), "sample", "builtins.open"),
    (
        "torch.load",
        lambda m: _set("model.generator", {"_target_": "torch.load", "f": m, "weights_only": False}),
        "sample",
        "torch.load",
    ),
    (
        "hub download",
        lambda m: _set(
            "model.generator",
            {"_target_": "torch.hub.load_state_dict_from_url", "url": "http://127.0.0.1:9/w.pt", "model_dir": m},
        ),
        "sample",
        "torch.hub",
    ),
    (
        "genkit function",
        lambda m: _set(
            "model.generator",
            {"_target_": "genkit.data.download.download", "url": "http://127.0.0.1:9/x", "dest": m, "sha256": "0"},
        ),
        "sample",
        "not a class",
    ),
    (
        "planted interpolation",
        lambda m: _set("trainer.profiler", "${oc.create:'{_target_: builtins.print}'}"),
        "sample",
        "interpolation",
    ),
    ("name outside the root", lambda m: _set("data.name", f"../../{MARKER}"), "eval", "data.name"),
    ("traversing file name", lambda m: _set("data.files", {f"../../{MARKER}": "0" * 64}), "eval", "plain file name"),
    ("absolute file name", lambda m: _set("data.files", {m: "0" * 64}), "eval", "plain file name"),
    ("traversing folder", lambda m: _set("data.folder", "../.."), "eval", "data.folder"),
    ("file mirror", lambda m: _set("data.mirrors", ["file:///etc/"]), "eval", "https"),
]


@pytest.mark.parametrize("name,edit,command,words", CASES, ids=[c[0] for c in CASES])
def test_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, tiny_gan_checkpoint, name, edit, command, words):
    marker = tmp_path / MARKER
    if command == "eval":  # a data set genkit does not ship: its own files and mirrors are kept, and checked
        gan_checkpoint = craft(tiny_gan_checkpoint, tmp_path / "foreign.ckpt", _foreign_data_set)
    else:
        gan_checkpoint = tiny_gan_checkpoint
    ckpt = craft(gan_checkpoint, tmp_path / "crafted.ckpt", edit(str(marker)))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    if command == "eval":
        out = cli_in_process("eval", f"ckpt={ckpt}", "n_samples=8", cwd=tmp_path, env=env)
    else:
        out = cli_in_process("sample", f"ckpt={ckpt}", "n=4", f"out={tmp_path / 'x.png'}", cwd=tmp_path, env=env)
    assert out.returncode == 2, out.stderr
    assert words in " ".join(out.stderr.split())
    assert "Traceback" not in out.stderr
    assert not marker.exists() and not (tmp_path.parent.parent / MARKER).exists()


def test_built_in_data_sets_keep_genkit_own_checksums(tmp_path, tiny_gan_checkpoint):
    ckpt = craft(tiny_gan_checkpoint, tmp_path / "c.ckpt", _set("data.files", {"train-images-idx3-ubyte.gz": "f" * 64}))
    run = load_model(ckpt)
    assert dict(run.config.data.files) == dict(shipped_data_config("mnist").files)
    assert run.config.data.root is None  # this machine's data root, not the checkpoint's


def test_a_foreign_set_cannot_fill_a_built_in_folder(tmp_path, tiny_gan_checkpoint):
    def edit(config):
        config["data"].update(name="lookalike", folder="mnist", files={"poison.gz": "f" * 64})

    run = load_model(craft(tiny_gan_checkpoint, tmp_path / "c.ckpt", edit))
    assert dict(run.config.data.files) == dict(shipped_data_config("mnist").files)


def test_gpt_checkpoint_samples_without_its_corpus(tmp_path):
    overrides = tiny_text_run(tmp_path)
    train(make_cfg(tmp_path, *overrides, "trainer.max_steps=2", "trainer.max_epochs=1"))
    (tmp_path / "corpus.txt").unlink()
    shutil.rmtree(tmp_path / "cache")
    run = tmp_path / "outputs" / "run"
    out = cli_in_process(
        "sample", f"ckpt={run}", "prompt=line", "max_new_tokens=5", "n=2", f"out={tmp_path / 's.txt'}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "s.txt").read_text()
    assert text.count("--- sample") == 2 and "line" in text
    assert (run / "tokenizer.json").is_file()
