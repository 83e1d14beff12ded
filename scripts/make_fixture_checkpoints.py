"""Tiny checkpoints of each family, as tests/fixtures/checkpoints_14332b0 holds them.

They were written by genkit at main 14332b0, before its modules moved into layers, so that the
tests can show that checkpoints from before the move still sample, evaluate and resume. Run at
that commit: python scripts/make_fixture_checkpoints.py tests/fixtures/checkpoints_14332b0
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from genkit.train import train
from tests.helpers import TINY_IMAGE_RUN, make_cfg, write_tiny_image_set

out = Path(sys.argv[1]).resolve()
out.mkdir(parents=True, exist_ok=True)
work = Path(tempfile.mkdtemp())
root = work / "data"
write_tiny_image_set(root / "mnist")
img = [f"data.root={root}", *TINY_IMAGE_RUN, "trainer.max_steps=2", "callbacks.samples.first_at_step=100000"]
runs = {
    "gan": ["model=gan", "model.generator.width=8", "model.discriminator.width=8", "model.generator.latent_dim=8"],
    "vae": ["model=vae", "model.encoder.width=2", "model.encoder.latent_dim=4"],
    "diffusion": [
        "model=diffusion",
        "model.net.base=8",
        "model.net.channel_mults=[1,1]",
        "model.sample_steps=2",
        "model.conditional=true",
    ],
}
for name, ov in runs.items():
    d = work / name
    train(make_cfg(d, *img, *ov))
os.chdir(work)
(work / "corpus.txt").write_text("\n".join(f"line {i % 37} of a small corpus for quick runs" for i in range(300)))
gpt = [
    "model=gpt",
    "data=text",
    "data.path=corpus.txt",
    "data.tokenizer=char",
    "data.token_unit=char",
    "data.block_size=16",
    "data.vocab_size=64",
    "data.batch_size=8",
    "model.net.n_layer=1",
    "model.net.n_embd=16",
    "model.net.n_head=2",
    "trainer.accelerator=cpu",
    "trainer.precision=32-true",
    "trainer.max_steps=2",
    "trainer.max_epochs=1",
    "callbacks.samples.first_at_step=100000",
]
train(make_cfg(work / "gpt", *gpt))
for name in [*runs, "gpt"]:
    src = work / name / "outputs" / "run" / "checkpoints" / "last.ckpt"
    dst = out / name / "checkpoints"
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst / "last.ckpt")
    print(name, (dst / "last.ckpt").stat().st_size)
