"""format=onnx: ONNX Runtime runs the exported image network (GAN generator, VAE decoder, one
diffusion denoiser step) and matches PyTorch within 1e-4 at batch sizes other than the traced one."""

from functools import partial
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from genkit.formats.base import Exported
from genkit.formats.onnx import FILE, graph_of, write_onnx
from genkit.models.diffusion import Diffusion
from genkit.models.gan import GAN
from genkit.models.nets import conv_vae, dcgan
from genkit.models.nets.unet import UNet
from genkit.models.vae import VAE

ADAM = partial(torch.optim.Adam)


def tiny(family: str):
    torch.manual_seed(0)
    if family == "cgan":  # class-conditional: labels are an input of the graph
        return GAN(
            dcgan.Generator(latent_dim=8, width=8, num_classes=3), dcgan.Discriminator(width=8, num_classes=3),
            ADAM, ADAM, conditional=True,
        )  # fmt: skip
    if family == "vae":
        return VAE(conv_vae.Encoder(latent_dim=4, width=8), conv_vae.Decoder(latent_dim=4, width=8), ADAM)
    net = UNet(channels=1, base=8, channel_mults=(1, 2), attention_levels=(1,), dropout=0.0, image_size=8)
    return Diffusion(net, ADAM, timesteps=20, image_shape=(1, 8, 8))


# the U-Net's export takes ~90 s on a loaded 2-core CPU: in the slow tier
@pytest.mark.parametrize("family", ["cgan", "vae", pytest.param("diffusion", marks=pytest.mark.slow)])
def test_onnxruntime_matches_pytorch(tmp_path, family):
    model = tiny(family).eval()
    out = write_onnx(Exported(model, None, None, {}, Path("run.ckpt"), 0), tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(out / FILE), providers=["CPUExecutionProvider"])
    net, example, names, _ = graph_of(model)
    assert [i.name for i in session.get_inputs()] == names
    for batch in (1, 5):  # traced with 2: the batch dimension is dynamic
        inputs = [
            torch.randint(0, 3 if name == "labels" else 20, (batch,)) if x.dtype == torch.long
            else torch.randn(batch, *x.shape[1:])
            for name, x in zip(names, example, strict=True)
        ]  # fmt: skip
        (theirs,) = session.run(None, {name: x.numpy() for name, x in zip(names, inputs, strict=True)})
        with torch.no_grad():
            ours = net(*inputs).numpy()
        assert theirs.shape == ours.shape and np.abs(theirs - ours).max() < 1e-4
