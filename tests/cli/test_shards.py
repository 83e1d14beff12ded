"""`genkit prepare` and training from shards through the real CLI: a run resumed mid-epoch draws
the batches an uninterrupted one draws, two DDP processes read disjoint parts that together are
all the shards, a checkpoint samples with the shards gone, and bad input is one paragraph."""

import json
import shutil
from collections import Counter

import pytest

from genkit.commands.train import train
from genkit.data.shards import META
from tests.cli.test_bad_input import assert_one_paragraph
from tests.helpers import (
    REPO,
    assert_resumed_run_draws_the_batches_of_a_straight_one,
    cli_in_process,
    make_cfg,
    run_cli,
    tiny_text_run,
)

SMALL = ["data.block_size=16", "data.batch_size=8", "model.net.n_layer=1", "trainer.accelerator=cpu",
         "trainer.precision=32-true"]  # fmt: skip


@pytest.fixture(scope="module")
def text_shards(tmp_path_factory):
    """Shards of a small corpus (genkit prepare on data=text), shared read-only by the tests."""
    folder = tmp_path_factory.mktemp("prepared")
    out = cli_in_process("prepare", *tiny_text_run(folder, lines=600)[1:7], f"out={folder / 'shards'}", cwd=folder)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "genkit train data=text_shards data.path=" in out.stdout
    return folder / "shards"


def shards_run(tmp_path, shards, *extra):
    return make_cfg(tmp_path, "model=lm", "data=text_shards", f"data.path={shards}", *SMALL, *extra)


@pytest.mark.slow
def test_a_run_resumed_mid_epoch_from_shards_trains_on_the_batches_of_an_uninterrupted_one(tmp_path, text_shards):
    # max_epochs set: the GPT's LR schedule counts the steps, which builds the loader before the restore
    common = ("trainer.max_epochs=3", "trainer.val_check_interval=4", "++trainer.limit_val_batches=1")
    run = ["model=lm", "data=text_shards", f"data.path={text_shards}", *SMALL, *common]
    assert_resumed_run_draws_the_batches_of_a_straight_one(tmp_path, run, stop=5, steps=10)


@pytest.mark.slow
def test_a_checkpoint_of_a_shards_run_samples_without_the_shards(tmp_path, text_shards):
    shards = tmp_path / "shards"
    shutil.copytree(text_shards, shards)
    train(shards_run(tmp_path, shards, "trainer.max_steps=2"))
    shutil.rmtree(shards)
    out = run_cli("sample", f"ckpt={tmp_path / 'outputs' / 'run'}", "n=2", "prompt=line", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "line" in out.stdout
    out = cli_in_process("eval", f"ckpt={tmp_path / 'outputs' / 'run'}", cwd=tmp_path)
    assert_one_paragraph(out, [f"data.path={shards} is not a folder", "genkit prepare"])


@pytest.mark.slow
def test_two_ddp_processes_read_disjoint_parts_of_the_shards_that_together_are_all_of_them(tmp_path, text_shards):
    """One epoch on 2 DDP processes; then the same run stopped after 3 steps and resumed: each
    process trains on the same windows in the same order as in the uninterrupted run."""
    from litdata import StreamingDataset, TokensLoader

    def ddp_run(run, rows, *extra):
        out = run_cli("train", "model=lm", "data=text_shards", f"data.path={text_shards}", *SMALL, "trainer=ddp_cpu",
                      "++trainer.limit_val_batches=1", f"+callbacks.recorder={{_target_: tests.helpers.RowRecorder, "
                      f"path: {rows}}}", f"hydra.run.dir={run}", *extra, cwd=tmp_path, timeout=600,
                      env={"PYTHONPATH": str(REPO)})  # fmt: skip
        assert out.returncode == 0, out.stderr[-3000:]
        seen = [line.split(" ", 1) for line in rows.read_text().splitlines()]
        return {rank: [row for r, row in seen if r == rank] for rank in ("0", "1")}

    straight = ddp_run(tmp_path / "a", tmp_path / "a.txt", "trainer.max_epochs=1", "trainer.max_steps=-1")
    windows = StreamingDataset(str(text_shards / "train"), item_loader=TokensLoader(block_size=17))
    every = Counter(" ".join(str(v) for v in windows[i][:-1].tolist()) for i in range(len(windows)))
    assert len(straight["0"]) == len(straight["1"]) > 3 * 4
    # each window once: on one process, never both, and every window of the shards read
    assert Counter(straight["0"]) + Counter(straight["1"]) == every
    ddp_run(tmp_path / "b", tmp_path / "b.txt", "trainer.max_epochs=1", "trainer.max_steps=3")
    resumed = ddp_run(tmp_path / "b", tmp_path / "b.txt", "trainer.max_epochs=1", "trainer.max_steps=-1")
    assert resumed == straight


def copy_with_meta(src, dst, **changes):
    shutil.copytree(src, dst)
    meta = json.loads((dst / META).read_text())
    (dst / META).write_text(json.dumps({**meta, **changes}))
    return dst


# (how to break it, words the message must contain)
SHARDS_CASES = {
    "not shards": (lambda tmp, shards: ["data.path=" + str(tmp)], ["holds no genkit-shards.json", "genkit prepare"]),
    "another kind": (
        lambda tmp, shards: ["data.path=" + str(copy_with_meta(shards, tmp / "p", kind="pictures", data="mnist"))],
        ["hold pictures (from data=mnist), not tokens", "data=image_shards"],
    ),
    "another version": (
        lambda tmp, shards: ["data.path=" + str(copy_with_meta(shards, tmp / "v", version=0))],
        ["format version 0", "Write them again"],
    ),
    "damaged index": (
        lambda tmp, shards: ["data.path=" + str(damaged(shards, tmp / "d", "train/index.json", b"{"))],
        ["train split of the shards", "cannot be read", "genkit prepare"],
    ),
    "truncated chunk": (
        lambda tmp, shards: ["data.path=" + str(damaged(shards, tmp / "t", "train/chunk-0-0.bin", b"\0" * 64))],
        ["chunk-0-0.bin", "holds 64 bytes", "not copied whole"],
    ),
    "mix weight zero": (
        lambda tmp, shards: [f"data.path={shards}", "data.mix=[0]"],
        ["data.mix=[0]", "positive number"],
    ),
    "mix weight word": (
        lambda tmp, shards: [f"data.path=[{shards},{shards}]", "data.mix=[1,lots]"],
        ["data.mix=[1, 'lots']", "positive number"],
    ),
    "mix weights too few": (
        lambda tmp, shards: [f"data.path=[{shards},{shards}]", "data.mix=[1]"],
        ["1 weights for 2 sources", "one weight per"],
    ),
}


def damaged(src, dst, name: str, content: bytes):
    shutil.copytree(src, dst)
    (dst / name).write_bytes(content)
    return dst


@pytest.mark.parametrize("case", SHARDS_CASES)
def test_bad_shards_are_one_paragraph(tmp_path, text_shards, case):
    make, words = SHARDS_CASES[case]
    out = cli_in_process("train", "model=lm", "data=text_shards", *SMALL, "trainer.max_steps=1", *make(tmp_path,
                         text_shards), cwd=tmp_path)  # fmt: skip
    assert_one_paragraph(out, words)


PREPARE_CASES = {
    "no out": (lambda tmp, shards: [], ["genkit prepare needs out=<folder>"]),
    "remote out": (
        lambda tmp, shards: ["out=s3://bucket/shards"],
        ["writes to a folder on this machine", "aws s3 sync"],
    ),
    "out is not shards": (lambda tmp, shards: [f"out={tmp.parent}"], ["does not hold shards", "replaces nothing else"]),
    "out holds shards": (lambda tmp, shards: [f"out={shards}"], ["already holds shards", "overwrite=true"]),
    "shards again": (
        lambda tmp, shards: ["data=text_shards", f"data.path={shards}", f"out={tmp / 'o'}"],
        ["data=text_shards reads shards `genkit prepare` wrote already", "train on them as they are"],
    ),
    "unknown option": (
        lambda tmp, shards: ["shard_size=5", f"out={tmp / 'o'}"],
        ["`shard_size` is not a key of the `genkit prepare` config"],
    ),
}


@pytest.mark.parametrize("case", PREPARE_CASES)
def test_bad_prepare_input_is_one_paragraph(tmp_path, text_shards, case):
    make, words = PREPARE_CASES[case]
    args = make(tmp_path, text_shards)
    data = [] if any(a.startswith("data=") for a in args) else tiny_text_run(tmp_path)[1:7]
    assert_one_paragraph(cli_in_process("prepare", *data, *args, cwd=tmp_path), words)


def test_a_disk_that_fills_while_shards_are_written_leaves_no_shards(tmp_path, monkeypatch):
    import errno

    from litdata.streaming.writer import BinaryWriter

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BinaryWriter, "write_chunk_to_file", full_disk)
    out = cli_in_process("prepare", *tiny_text_run(tmp_path)[1:7], f"out={tmp_path / 'shards'}", cwd=tmp_path)
    assert_one_paragraph(out, ["filled up while genkit was writing the shards", "were removed", "larger disk"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "corpus.txt"]


@pytest.mark.slow
def test_training_streams_shards_from_object_storage(tmp_path, text_shards, monkeypatch):
    """s3:// through an S3 server on 127.0.0.1 (moto's): the shards are copied there as a user
    would (`aws s3 sync`), and a run reads them with the S3 client LitData uses."""
    import boto3
    import litdata.streaming.downloader
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in dict(AWS_ENDPOINT_URL=f"http://{host}:{port}", AWS_ACCESS_KEY_ID="genkit",
                               AWS_SECRET_ACCESS_KEY="genkit", AWS_DEFAULT_REGION="us-east-1").items():  # fmt: skip
            monkeypatch.setenv(key, value)
        # a plain-http endpoint: genkit routes LitData's chunk fetches through boto3 (obstore refuses
        # http); the setting is restored after the test
        monkeypatch.setattr(litdata.streaming.downloader, "_OBSTORE_AVAILABLE", True)
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="corpus")
        for file in text_shards.rglob("*"):
            if file.is_file():
                s3.upload_file(str(file), "corpus", f"shards/{file.relative_to(text_shards)}")
        cache = tmp_path / "cache"
        train(shards_run(tmp_path, "s3://corpus/shards", "trainer.max_steps=3", f"data.cache_dir={cache}"))
        run = tmp_path / "outputs" / "run"
        assert (run / "checkpoints" / "last.ckpt").is_file()
        # the chunks came over the wire into data.cache_dir, beside the shards' description
        assert list(cache.rglob("*.bin")) and list(cache.rglob("genkit-shards.json"))
        out = cli_in_process("train", "model=lm", "data=text_shards", "data.path=s3://corpus/nothing-here", *SMALL,
                             f"data.cache_dir={cache}", cwd=tmp_path)  # fmt: skip
        assert_one_paragraph(out, ["Could not read s3://corpus/nothing-here/genkit-shards.json", "credentials"])
    finally:
        server.stop()


@pytest.mark.slow
def test_picture_shards_train_and_a_resumed_run_draws_the_batches_of_an_uninterrupted_one(tmp_path, tiny_data_root):
    """genkit prepare data=mnist (the tiny look-alike: 64 training pictures), then a GAN trained on
    the shards, stopped mid-epoch and resumed, against one run straight through."""
    shards = tmp_path / "mnist-shards"
    env = {"GENKIT_DATA_DIR": str(tiny_data_root)}
    out = cli_in_process("prepare", "data=mnist", "data.val_size=32", f"out={shards}", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "genkit train data=image_shards" in out.stdout
    meta = json.loads((shards / META).read_text())
    assert meta["kind"] == "pictures" and meta["splits"] == {"train": 64, "val": 32, "test": 32}
    tiny = ["model=gan", "data=image_shards", f"data.path={shards}", "data.batch_size=16", "data.eval_batch_size=16",
            "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_epochs=-1",
            "data.augment=[hflip]"]  # fmt: skip
    # 4 batches an epoch: stopped mid-epoch, resumed into the next
    assert_resumed_run_draws_the_batches_of_a_straight_one(tmp_path, tiny, stop=3, steps=7)


def test_the_same_data_prepared_again_has_the_same_fingerprint_and_other_data_another(tmp_path):
    """A run resumes on shards written again from the same data (its place in them holds), and is
    refused on shards of other data (genkit.data.shard_sources)."""
    args = tiny_text_run(tmp_path)[1:7]
    for name in ("first", "again"):
        assert cli_in_process("prepare", *args, f"out={tmp_path / name}", cwd=tmp_path).returncode == 0
    other = [*args, "data.block_size=8", "data.vocab_size=290"]  # another tokenizer: other ids
    assert cli_in_process("prepare", *other, f"out={tmp_path / 'other'}", cwd=tmp_path).returncode == 0
    prints = {
        name: json.loads((tmp_path / name / META).read_text())["fingerprint"] for name in ("first", "again", "other")
    }
    assert prints["first"] == prints["again"] != prints["other"]
