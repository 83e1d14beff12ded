"""Tiny checkpoints of each family, as tests/fixtures/checkpoints_14332b0 holds them.

They were written by genkit at main 14332b0, before its modules moved into layers, so that the
tests can show that checkpoints from before the move still sample, evaluate and resume (the
tests train on from them with these same overrides). Run at that commit:
    python scripts/make_fixture_checkpoints.py tests/fixtures/checkpoints_14332b0
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import TINY_IMAGE_RUN, write_tiny_image_set  # noqa: E402

# the image runs train on write_tiny_image_set(<root>/mnist) with data.root=<root>
IMAGE_RUN = [*TINY_IMAGE_RUN, "trainer.max_steps=2", "callbacks.samples.first_at_step=100000"]
FAMILIES = {
    "gan": ["model=gan", "model.generator.width=8", "model.discriminator.width=8", "model.generator.latent_dim=8"],
    "vae": ["model=vae", "model.encoder.width=2", "model.encoder.latent_dim=4"],
    "diffusion": [
        "model=diffusion",
        "model.net.base=8",
        "model.net.channel_mults=[1,1]",
        "model.sample_steps=2",
        "model.conditional=true",
    ],  # fmt: skip
}
# the GPT trains on CORPUS, written as corpus.txt into the folder it runs in
CORPUS = "\n".join(f"line {i % 37} of a small corpus for quick runs" for i in range(300))
GPT_RUN = [
    "model=gpt", "data=text", "data.path=corpus.txt", "data.tokenizer=char", "data.token_unit=char",
    "data.block_size=16", "data.vocab_size=64", "data.batch_size=8", "model.net.n_layer=1", "model.net.n_embd=16",
    "model.net.n_head=2", "trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.max_steps=2",
    "trainer.max_epochs=1", "callbacks.samples.first_at_step=100000",
]  # fmt: skip


def main(out: Path) -> None:
    from tests.helpers import make_cfg

    try:
        from genkit.commands.train import train
    except ImportError:  # genkit at 14332b0, where the fixtures were made
        from genkit.train import train

    work = Path(tempfile.mkdtemp())
    root = work / "data"
    write_tiny_image_set(root / "mnist")
    for name, overrides in FAMILIES.items():
        train(make_cfg(work / name, f"data.root={root}", *IMAGE_RUN, *overrides))
    os.chdir(work)
    (work / "corpus.txt").write_text(CORPUS)
    train(make_cfg(work / "gpt", *GPT_RUN))
    for name in [*FAMILIES, "gpt"]:
        dest = out / name / "checkpoints"
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(work / name / "outputs" / "run" / "checkpoints" / "last.ckpt", dest / "last.ckpt")
        print(name, (dest / "last.ckpt").stat().st_size, "bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
