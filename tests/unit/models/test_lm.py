import pytest
import torch

from genkit.checkpoints.files import load_checkpoint
from genkit.commands.train import train
from genkit.models.decoding import Sampling, generate
from genkit.models.nets.transformer import Transformer
from genkit.models.sampling import filter_logits, sample_next
from genkit.training.build import build_model
from tests.helpers import make_cfg, needs_shared, run_cli, tiny_text_run

TINY_GPT = (
    "model=lm",
    "model.net.n_layer=2",
    "model.net.n_head=2",
    "model.net.n_embd=32",
    "model.warmup_steps=2",
    "trainer.max_steps=6",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
)


def tiny_net(**kw):
    torch.manual_seed(0)
    return Transformer(vocab_size=50, block_size=kw.pop("block_size", 16), n_layer=2, n_head=2, n_embd=32, **kw).eval()


def test_gpt_trains_and_logs_perplexity(tmp_path):
    cfg = make_cfg(tmp_path, *tiny_text_run(tmp_path), *TINY_GPT[1:], "test=true")
    metrics = train(cfg)
    for key in ("train/loss", "val/loss", "val/ppl", "test/ppl"):
        assert key in metrics
    assert metrics["val/ppl"] == pytest.approx(torch.exp(torch.tensor(metrics["val/loss"])).item(), rel=1e-4)
    run = tmp_path / "outputs" / "run"
    assert load_checkpoint(run / "checkpoints" / "last.ckpt")["global_step"] == 6
    assert "val/ppl" in (run / "metrics.csv").read_text().splitlines()[0]
    assert list((run / "samples").glob("*.txt"))


def test_char_level_logs_bits_per_character(tmp_path):
    folder = tmp_path / "data" / "tinyshakespeare"
    folder.mkdir(parents=True)
    (folder / "input.txt").write_text("To be, or not to be: that is the question.\n" * 60)
    cfg = make_cfg(
        tmp_path,
        *TINY_GPT,
        "data=tinyshakespeare",
        f"data.root={tmp_path / 'data'}",
        "data.block_size=16",
        "data.vocab_size=65",
        f"data.cache_dir={tmp_path}/cache",
    )
    metrics = train(cfg)
    assert metrics["val/bpc"] == pytest.approx(metrics["val/loss"] / torch.log(torch.tensor(2.0)).item(), rel=1e-4)


@pytest.mark.parametrize("prompt_len,new", [(3, 10), (5, 30)])  # the second runs past block_size=16
def test_kv_cache_matches_full_prefix_greedy(prompt_len, new):
    net = tiny_net()
    idx = torch.randint(0, 50, (2, prompt_len), generator=torch.Generator().manual_seed(1))
    with_cache = generate(net, idx, new, Sampling(temperature=0), use_cache=True)
    without = generate(net, idx, new, Sampling(temperature=0), use_cache=False)
    assert with_cache.shape == (2, prompt_len + new)
    assert torch.equal(with_cache, without)


def test_cached_logits_equal_full_forward():
    net = tiny_net()
    idx = torch.randint(0, 50, (1, 12))
    full, _ = net(idx)
    _, cache = net(idx[:, :8])
    part, _ = net(idx[:, 8:], cache)  # several new positions on top of a cache
    torch.testing.assert_close(part, full[:, 8:], atol=1e-5, rtol=1e-5)


def test_top_k_and_top_p_stay_in_the_allowed_set():
    logits = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.0, -1.0]])
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False, False, False]]
    probs = logits.softmax(-1)[0]  # 0.63, 0.23, 0.086, ...
    nucleus = torch.isfinite(filter_logits(logits, top_p=0.8))[0]
    assert nucleus.tolist() == [True, True, False, False, False, False]
    assert probs[:1].sum() < 0.8 <= probs[:2].sum()
    g = torch.Generator().manual_seed(0)
    draws = torch.cat([sample_next(logits.repeat(500, 1), 1.0, top_k=3, generator=g) for _ in range(4)])
    assert set(draws.flatten().tolist()) == {0, 1, 2}
    draws = torch.cat([sample_next(logits.repeat(500, 1), 2.0, top_p=0.8, generator=g) for _ in range(4)])
    assert set(draws.flatten().tolist()) <= set(
        torch.nonzero(filter_logits(logits / 2.0, top_p=0.8).isfinite()[0]).flatten().tolist()
    )


def test_sample_shapes(tmp_path):
    cfg = make_cfg(tmp_path, *TINY_GPT, "data=ptb", "data.block_size=16")
    model = build_model(cfg).eval()
    out = model.sample(3, prompt_ids=[1, 2], max_new_tokens=5, top_k=10, generator=torch.Generator().manual_seed(0))
    assert out.shape == (3, 7) and out.dtype == torch.long
    assert out[:, :2].tolist() == [[1, 2]] * 3 and out.max() < 10_000


@pytest.mark.slow
@needs_shared("tinyshakespeare")
def test_train_and_sample_tinyshakespeare_cli(tmp_path):
    run = tmp_path / "run"
    out = run_cli(
        "train",
        "model=lm",
        "data=tinyshakespeare",
        "++trainer.max_steps=20",
        "trainer.limit_val_batches=5",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "val/loss" in (run / "metrics.csv").read_text().splitlines()[0]
    out = run_cli(
        "sample",
        f"ckpt={run}/checkpoints/last.ckpt",
        "prompt=ROMEO:",
        "max_new_tokens=50",
        "n=1",
        "temperature=0.8",
        "top_k=20",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout.split("ROMEO:", 1)[1]
    assert len(text.split("\n\n")[0]) >= 50 - text.count("\n")
    assert list((run / "samples").glob("sample_*.txt"))


@pytest.mark.slow
@needs_shared("ptb")
def test_train_ptb_cli(tmp_path):
    run = tmp_path / "run"
    out = run_cli(
        "train",
        "model=lm",
        "data=ptb",
        "++trainer.max_steps=10",
        "trainer.limit_val_batches=5",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert "val/loss" in header and "val/ppl" in header


@pytest.mark.parametrize("n", [5, 1000])  # one chunk, and several
def test_linear_cross_entropy_equals_full_logits(n):
    from genkit.models.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    h = torch.randn(n, 16, requires_grad=True)
    w = torch.randn(3000, 16, requires_grad=True)
    y = torch.randint(0, 3000, (n,))
    y[::7] = -1
    expected = torch.nn.functional.cross_entropy(h @ w.t(), y, ignore_index=-1)
    gh, gw = torch.autograd.grad(expected, (h, w))
    loss = linear_cross_entropy(h, w, y, ignore_index=-1)
    gh2, gw2 = torch.autograd.grad(loss * 2, (h, w))
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(gh2, 2 * gh)
    torch.testing.assert_close(gw2, 2 * gw)


def test_linear_cross_entropy_where_the_target_probability_underflows():
    """Rows whose target probability underflows fp32 (logits hundreds apart) still get the exact
    loss (the CPU path reads -log p[y] from the softmax, and falls back to logsumexp for them)."""
    from genkit.models.linear_cross_entropy import linear_cross_entropy

    torch.manual_seed(0)
    h = (torch.randn(64, 8) * 40).requires_grad_()
    w = torch.randn(50, 8, requires_grad=True)
    y = torch.randint(0, 50, (64,))
    expected = torch.nn.functional.cross_entropy(h @ w.t(), y)
    assert (torch.softmax(h @ w.t(), -1).gather(1, y[:, None]) < torch.finfo(torch.float32).tiny).any()
    gh, gw = torch.autograd.grad(expected, (h, w))
    loss = linear_cross_entropy(h, w, y)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(torch.autograd.grad(loss, (h, w)), (gh, gw))
    with torch.no_grad():  # evaluation: no gradients, log_softmax
        torch.testing.assert_close(linear_cross_entropy(h, w, y), expected)


def test_new_networks_use_the_exact_gelu_and_old_runs_keep_the_tanh_form(tmp_path, monkeypatch):
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    import genkit.checkpoints.hub as hub
    import genkit.checkpoints.starting_weights as starting

    assert make_cfg(tmp_path, *TINY_GPT).model.net.gelu == "none"
    x = torch.randn(3, 32)
    for form in ("none", "tanh"):
        mlp = tiny_net(gelu=form).blocks[0].mlp
        torch.testing.assert_close(mlp(x), mlp.proj(F.gelu(mlp.fc(x), approximate=form)))
    assert not torch.allclose(F.gelu(x, approximate="none"), F.gelu(x, approximate="tanh"))
    # a run saved before model.net.gelu existed was trained with the tanh form
    monkeypatch.setattr(hub, "starting_checkpoint", lambda _: tmp_path / "old.ckpt")
    monkeypatch.setattr(starting, "starting_config", lambda _: OmegaConf.create({"model": {"net": {"n_layer": 2}}}))
    assert hub.pretrained_size("old-run", "gelu", "none") == "tanh"
    assert hub.pretrained_size("old-run", "n_layer", 4) == 2


def test_attention_runs_in_fp32_under_cpu_bf16_autocast():
    """The CPU flash kernel's bf16 backward is ~8x slower than fp32: genkit's attention upcasts."""
    from genkit.models.nets.transformer import attention

    q, k, v = (torch.randn(2, 2, 16, 8, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attention(q, k, v, is_causal=True)
    assert y.dtype == torch.bfloat16
    expected = torch.nn.functional.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True)
    torch.testing.assert_close(y.float(), expected, atol=1e-2, rtol=1e-2)
    y.float().sum().backward()
    assert q.grad is not None and q.grad.dtype == torch.bfloat16


def test_bf16_training_clips_the_gradients_of_fused_optimizers(tmp_path):
    """Lightning refuses to clip fused optimizers under mixed precision (fp16 unscales in the
    step); under bf16 nothing is scaled and genkit clips them. GPU recipes rely on it."""
    import lightning as L

    from genkit.training.build import build

    seen = []

    def record(optimizer, args, kwargs):  # the gradients the step applied (clipped in its closure)
        grads = [
            p.grad.float().norm() for group in optimizer.param_groups for p in group["params"] if p.grad is not None
        ]
        seen.append((optimizer.defaults.get("fused"), torch.linalg.vector_norm(torch.stack(grads)).item()))

    class Record(L.Callback):
        def on_train_start(self, trainer, module):
            trainer.optimizers[0].register_step_post_hook(record)

    cfg = make_cfg(tmp_path, *tiny_text_run(tmp_path), *TINY_GPT[1:], "trainer.precision=bf16-mixed",
                   "trainer.gradient_clip_val=0.01")  # fmt: skip
    parts = build(cfg)
    parts.trainer.callbacks.append(Record())
    parts.trainer.fit(parts.model, datamodule=parts.datamodule)
    assert len(seen) == 6 and all(fused for fused, _ in seen)
    assert max(norm for _, norm in seen) <= 0.01 * 1.001


def test_a_network_without_load_pretrained_given_init_from_is_one_paragraph():
    """A network of the user's own that loads no pretrained weights: a GenkitError, not an AttributeError."""
    from genkit.errors import GenkitError
    from genkit.models.lm import LanguageModel

    with pytest.raises(GenkitError, match="has no load_pretrained"):
        LanguageModel(net=torch.nn.Linear(2, 2), optimizer=torch.optim.AdamW, init_from="some/hub-id")
