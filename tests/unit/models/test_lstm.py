"""The LSTM network of the language-model family (model/lm_net@model.net=lstm): its cache is the LSTM's
state, so it reads and writes past block_size; it trains, checkpoints, samples and evaluates
through the same GPT module and CLI as the transformer."""

import json
import math

import pytest
import torch

from genkit.checkpoints.files import load_checkpoint
from genkit.commands.train import train
from genkit.errors import GenkitError
from genkit.models.decoding import Sampling, generate
from genkit.models.nets.lstm import LSTMLanguageModel
from genkit.models.nets.transformer import Transformer
from genkit.training.build import build_model
from genkit.training.restore import load_model
from tests.helpers import cli_in_process, make_cfg, tiny_text_run

LSTM = "model/lm_net@model.net=lstm"
# the word_language_model recipe's optimiser (experiment=lstm_ptb), at a tiny scale
TINY_LSTM_RUN = (
    LSTM,
    "model.net.n_embd=16",
    "model.optimizer._target_=torch.optim.SGD",
    "model.optimizer.lr=5.0",
    "model.optimizer.betas=null",
    "model.warmup_steps=0",
    "model.min_lr_ratio=0.0",
    "trainer.gradient_clip_val=0.25",
    "trainer.max_steps=20",
    "trainer.max_epochs=-1",
)


def tiny_lstm(**kw) -> LSTMLanguageModel:
    torch.manual_seed(0)
    return LSTMLanguageModel(vocab_size=50, block_size=8, n_layer=2, n_embd=16, **kw).eval()


def ids(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 50, shape, generator=torch.Generator().manual_seed(seed))


def genkit_error(err: BaseException) -> GenkitError | None:
    """The GenkitError behind err (Hydra's instantiate wraps what a constructor raises)."""
    while err is not None and not isinstance(err, GenkitError):
        err = err.__cause__ or err.__context__
    return err


def test_hidden_and_forward_shapes():
    net = tiny_lstm()
    h, (h_n, c_n) = net.hidden(ids(3, 8))
    assert h.shape == (3, 8, 16) and h_n.shape == c_n.shape == (2, 3, 16)
    logits, state = net(ids(3, 8))
    assert logits.shape == (3, 8, 50) and state[0].shape == (2, 3, 16)
    torch.testing.assert_close(logits, net.lm_head(h))


def test_tied_weights_share_storage():
    tied, untied = tiny_lstm(), tiny_lstm(tie_weights=False)
    assert tied.lm_head.weight is tied.wte.weight
    assert tied.lm_head.weight.data_ptr() == tied.wte.weight.data_ptr()
    assert untied.lm_head.weight.data_ptr() != untied.wte.weight.data_ptr()
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 50 * 16
    assert tied.lm_head.bias is None and tied.wte.weight.abs().max() <= 0.1


def test_carried_state_equals_the_whole_sequence():
    net = tiny_lstm()
    x = ids(2, 12)  # past block_size=8: the state carries, nothing limits the length
    full, _ = net(x)
    first, state = net(x[:, :5])
    rest, _ = net(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("temperature,top_k,top_p", [(0, None, None), (1.0, 10, None), (0.8, None, 0.9)])
def test_generate_with_state_equals_rereading(temperature, top_k, top_p):
    net = tiny_lstm()
    prompt = ids(2, 3)
    runs = [
        generate(net, prompt, 20, Sampling(temperature, top_k, top_p, torch.Generator().manual_seed(0)), use_cache)
        for use_cache in (True, False)
    ]
    assert runs[0].shape == (2, 23) and torch.equal(runs[0][:, :3], prompt)
    assert torch.equal(runs[0], runs[1])


def test_generate_has_no_context_limit():
    net = tiny_lstm()
    out = generate(net, ids(2, 10), 30, Sampling(top_k=5, generator=torch.Generator().manual_seed(0)))
    assert out.shape == (2, 40) and out.max() < 50


def test_network_interface():
    net = tiny_lstm()
    lstm_weights = sum(p.numel() for p in net.lstm.parameters())
    assert net.flops_per_token() == 6 * (lstm_weights + 50 * 16)
    assert net.compile_units() == []
    transformer = Transformer(vocab_size=50, block_size=8, n_layer=2, n_head=2, n_embd=16)
    assert transformer.compile_units() == list(transformer.blocks)
    n = sum(p.numel() for p in transformer.parameters()) - 8 * 16
    assert transformer.flops_per_token() == 6 * n + 12 * 2 * 8 * 16


@pytest.mark.slow
def test_gpt_with_an_lstm_trains_checkpoints_samples_and_evaluates(tmp_path):
    metrics = train(make_cfg(tmp_path, *tiny_text_run(tmp_path), *TINY_LSTM_RUN, "test=true"))
    assert all(math.isfinite(metrics[k]) for k in ("train/loss", "val/loss", "test/ppl"))
    # from near-uniform logits (ln 300 = 5.7 nats) down on a corpus that repeats itself
    assert metrics["val/loss"] < 0.8 * math.log(300)
    run = tmp_path / "outputs" / "run"
    checkpoint = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 20
    loaded = load_model(run / "checkpoints" / "last.ckpt").model
    assert isinstance(loaded.net, LSTMLanguageModel) and loaded.net.lm_head.weight is loaded.net.wte.weight
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, checkpoint["state_dict"][key]), key
    # the real CLI: 40 new tokens from a block_size=16 model, then the test split
    out = cli_in_process(
        "sample", f"ckpt={run}", "prompt=line", "max_new_tokens=40", "n=2", f"out={tmp_path / 's.txt'}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = (tmp_path / "s.txt").read_text()
    assert text.count("--- sample") == 2 and "line" in text
    out = cli_in_process("eval", f"ckpt={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert math.isfinite(json.loads((run / "eval.json").read_text())["test/ppl"])


def test_lstm_ptb_recipe_builds_with_sgd(tmp_path):
    cfg = make_cfg(tmp_path, "experiment=lstm_ptb")
    model = build_model(cfg)
    assert isinstance(model.net, LSTMLanguageModel) and model.net.block_size == 35
    assert "betas" not in model.optimizer.keywords
    groups = [{"params": [torch.zeros(2, 2)]}, {"params": [torch.zeros(2)], "weight_decay": 0.0}]
    optimizer = model.optimizer(params=groups)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["momentum"] == 0
    assert model.flops_per_step(20) == model.net.flops_per_token() * 35 * 20


@pytest.mark.slow
def test_an_lstm_run_starts_a_fine_tuning_run(tmp_path):
    """model.init_from=<an LSTM run>: the new run takes its sizes and weights, and trains in full."""
    train(make_cfg(tmp_path, *tiny_text_run(tmp_path), *TINY_LSTM_RUN))
    source = tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt"
    start = {k: v for k, v in load_checkpoint(source)["state_dict"].items() if k.startswith("net.")}
    # no model.net.n_embd here: the 16 of the source run, not the default 200
    overrides = [o for o in TINY_LSTM_RUN if not o.startswith("model.net.n_embd")]
    cfg = make_cfg(tmp_path / "new", *tiny_text_run(tmp_path), *overrides, f"model.init_from={source}")
    model = build_model(cfg)
    assert model.net.n_embd == 16
    for key, value in start.items():
        assert torch.equal(model.state_dict()[key], value), key
    metrics = train(make_cfg(tmp_path / "new", *tiny_text_run(tmp_path), *overrides, f"model.init_from={source}"))
    assert math.isfinite(metrics["val/loss"])


def test_lora_on_an_lstm_is_refused_in_one_paragraph(tmp_path):
    cfg = make_cfg(tmp_path, "model=lm", "data=ptb", LSTM, "model.net.n_embd=16", "finetune.lora.r=2")
    with pytest.raises(GenkitError, match="names no layers for LoRA adapters") as info:
        build_model(cfg)
    assert "finetune.lora.targets" in str(info.value) and "\n" not in str(info.value)


def test_hugging_face_gpt2_weights_do_not_load_into_an_lstm(tmp_path):
    folder = tmp_path / "tiny-gpt2"
    folder.mkdir()
    sizes = {"vocab_size": 100, "n_positions": 64, "n_embd": 16, "n_layer": 1, "n_head": 2}
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2", **sizes}))
    cfg = make_cfg(tmp_path, "model=lm", "data=ptb", LSTM, f"model.init_from={folder}")
    with pytest.raises(Exception) as info:
        build_model(cfg)
    err = genkit_error(info.value)
    assert err is not None, info.value
    assert "load only into genkit's transformer" in str(err) and "model/lm_net@model.net=gpt2" in str(err)


def test_stream_windows_count_every_target_once_and_continue_row_by_row():
    from genkit.data.text import StreamWindows
    from genkit.loss_targets import IGNORE_INDEX

    ids = torch.arange(1, 104)  # 103 tokens
    evals = StreamWindows(ids.numpy(), block_size=4, streams=3, eval=True, eot_id=0)
    batches = [evals.__getitems__(list(range(j * 3, j * 3 + 3))) for j in range(evals.windows)]
    targets = torch.cat([y[y != IGNORE_INDEX] for _, y, _ in batches])
    assert sorted(targets.tolist()) == ids.tolist()  # bos + 103 tokens: 103 targets, each once
    assert batches[0][0][0, 0] == 0 and batches[0][2].all() and not batches[1][2].any()
    train = StreamWindows(ids.numpy(), block_size=4, streams=3, eval=False)
    prev = train.__getitems__([0, 1, 2])
    for j in range(1, train.windows):
        x, y, first = train.__getitems__([j * 3, j * 3 + 1, j * 3 + 2])
        assert torch.equal(x[:, 0], prev[1][:, -1]) and not first.any()  # row b goes on where it stopped
        assert torch.equal(y[:, :-1], x[:, 1:])
        prev = (x, y, first)


def test_carried_validation_equals_reading_each_stream_whole(tmp_path):
    """data.streams=true: the GPT module's val loss with an LSTM equals the loss of each stream
    read in one pass; training carries the state too (its batches are (x, y, first))."""
    from genkit.loss_targets import IGNORE_INDEX

    cfg = make_cfg(tmp_path, *tiny_text_run(tmp_path), *TINY_LSTM_RUN, "data.streams=true", "data.eval_batch_size=4")
    metrics = train(cfg)
    assert math.isfinite(metrics["val/loss"])
    loaded = load_model(tmp_path / "outputs" / "run" / "checkpoints" / "last.ckpt")
    model, datamodule = loaded.model.eval(), loaded.datamodule
    datamodule.setup("fit")
    loader = datamodule.val_dataloader()
    total = count = 0.0
    model._carried = {}
    with torch.no_grad():
        for batch in loader:
            loss, n = model._loss(batch, "val")
            total, count = total + loss * n, count + n
    carried = total / count
    windows = loader.dataset
    with torch.no_grad():
        logits, _ = model.net(windows.x)  # every stream in one pass
        whole = torch.nn.functional.cross_entropy(logits.flatten(0, 1), windows.y.flatten(), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(carried, whole, atol=1e-5, rtol=1e-5)
    assert math.isclose(metrics["val/loss"], whole.item(), rel_tol=1e-4)


def test_streams_split_over_processes_keep_their_rows():
    """Under DDP each process reads its own streams (rank, rank + world, ...) window after window."""
    from genkit.data.batching import ShuffledBatches

    streams, windows, world = 4, 3, 2
    for rank in range(world):
        batches = list(
            ShuffledBatches(streams * windows, streams // world, seed=0, rank=rank, world=world, shuffle=False)
        )
        assert [[k % streams for k in b] for b in batches] == [[rank, rank + world]] * windows
        assert [[k // streams for k in b] for b in batches] == [[j, j] for j in range(windows)]
