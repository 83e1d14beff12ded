"""A family from outside genkit: its module in a temporary folder on PYTHONPATH, its config in the
user's own config dir. It trains, samples and evaluates through the CLI without touching genkit."""

import json
import textwrap
from pathlib import Path

import pytest

from tests.helpers import TINY_IMAGE_RUN, cli_in_process, run_cli

FAMILY = '''
"""A plain autoencoder whose decoder samples from N(0, I) codes: the smallest genkit family."""

import torch
import torch.nn.functional as F
from torch import nn

from genkit.models.base import GenerativeModel
from genkit.options import Option, number


class TinyAutoencoder(GenerativeModel):
    # one declaration: `genkit sample` takes, checks and lists it (with --config-dir)
    sample_options = {
        "spread": Option(1.0, "how far from 0 the codes are drawn", number(lambda v: v > 0, "a number above 0"))
    }

    def __init__(self, channels: int, image_size: int, latent_dim: int = 8, lr: float = 1e-3):
        super().__init__()
        self.shape, self.latent_dim, self.lr = (channels, image_size, image_size), latent_dim, lr
        pixels = channels * image_size * image_size
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, latent_dim))
        self.decoder = nn.Sequential(nn.Linear(latent_dim, pixels), nn.Tanh())

    def _loss(self, batch):
        x, _ = batch
        return F.mse_loss(self.decoder(self.encoder(x)).view_as(x), x)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch))

    def test_step(self, batch, batch_idx):
        self.log("test/loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    @torch.no_grad()
    def sample(self, n, *, generator=None, spread=1.0):
        z = spread * torch.randn(n, self.latent_dim, generator=generator, device=self.device)
        return self.decoder(z).view(n, *self.shape)
'''

CONFIG = """
_target_: tiny_family.TinyAutoencoder
channels: ${data.channels}
image_size: ${data.image_size}
latent_dim: 8
lr: 1.0e-3
"""


@pytest.fixture
def user_dir(tmp_path: Path) -> Path:
    """<tmp>/user: tiny_family.py and my_configs/model/tiny_ae.yaml, nothing inside genkit."""
    user = tmp_path / "user"
    (user / "my_configs" / "model").mkdir(parents=True)
    (user / "tiny_family.py").write_text(textwrap.dedent(FAMILY))
    (user / "my_configs" / "model" / "tiny_ae.yaml").write_text(CONFIG)
    return user


@pytest.mark.slow
def test_user_family_trains_samples_and_evaluates(tmp_path, tiny_data_root, user_dir, monkeypatch):
    env = {"PYTHONPATH": str(user_dir), "GENKIT_DATA_DIR": str(tiny_data_root), "XDG_CACHE_HOME": str(tmp_path)}
    run = tmp_path / "run"
    config_dir = str(user_dir / "my_configs")
    out = run_cli(
        "train", "--config-dir", config_dir, "model=tiny_ae", *TINY_IMAGE_RUN, f"hydra.run.dir={run}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert list((run / "samples").glob("step_*.png"))

    grid = tmp_path / "grid.png"
    # a checkpoint's config names code: genkit builds the user's classes only when told to trust them
    out = cli_in_process("sample", f"ckpt={run}", "n=9", f"out={grid}", cwd=tmp_path, env=env)
    assert out.returncode == 2 and "trusted_targets=[tiny_family.]" in " ".join(out.stderr.split())
    trust = "trusted_targets=[tiny_family.]"
    out = run_cli("sample", f"ckpt={run}", "n=9", f"out={grid}", trust, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert grid.is_file()

    # the family's own sample option, declared once on its class
    monkeypatch.syspath_prepend(str(user_dir))  # in this process, as PYTHONPATH does in a new one
    out = cli_in_process("sample", "--config-dir", config_dir, "--help", cwd=tmp_path, env=env)
    assert "TinyAutoencoder:" in out.stdout and "spread=1.0" in out.stdout, out.stdout
    out = cli_in_process("sample", "--config-dir", config_dir, f"ckpt={run}", "spread=0", trust, cwd=tmp_path, env=env)
    assert out.returncode == 2 and "spread=0 is not valid" in out.stderr and "above 0" in out.stderr, out.stderr
    wide = tmp_path / "wide.png"
    out = run_cli("sample", "--config-dir", config_dir, f"ckpt={run}", "n=9", f"out={wide}", "spread=3", trust,
                  cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert wide.read_bytes() != grid.read_bytes()

    out = run_cli(
        "eval", f"ckpt={run}", "n_samples=32", "batch_size=16", "classifier_epochs=1", trust, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["test/loss"] > 0 and result["fid_clf"] >= 0


def test_hydra_searchpath_finds_the_user_family_and_lists_it_in_errors(tmp_path, user_dir):
    searchpath = f"hydra.searchpath=[file://{user_dir / 'my_configs'}]"
    out = cli_in_process("train", searchpath, "model=tiny_ae", "--cfg", "job", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tiny_family.TinyAutoencoder" in out.stdout

    out = cli_in_process("train", "--config-dir", str(user_dir / "my_configs"), "model=tiny_aee", cwd=tmp_path)
    assert out.returncode == 2
    assert "tiny_ae" in out.stderr and "gan" in out.stderr and "Traceback" not in out.stderr


def test_a_model_outside_the_contract_is_one_paragraph(tmp_path, tiny_data_root):
    out = cli_in_process(
        "train", "model._target_=torch.nn.Identity", "~model.generator", "~model.discriminator",
        "~model.optimizer_g", "~model.optimizer_d", "~model.loss", *TINY_IMAGE_RUN, cwd=tmp_path,
        env={"GENKIT_DATA_DIR": str(tiny_data_root)},
    )  # fmt: skip
    assert out.returncode == 2
    assert "GenerativeModel" in out.stderr and "Traceback" not in out.stderr
