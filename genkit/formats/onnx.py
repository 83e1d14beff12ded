"""`genkit export format=onnx`: the network that makes images, as out/model.onnx for ONNX Runtime.

What each family exports (batch size dynamic; inputs and output named in the graph):
- GAN: the generator, z (B, latent_dim) [, labels (B,) int64] -> images (B, C, H, W) in [-1, 1];
- VAE: the decoder with the mapping genkit's sample() applies, z [, labels] -> images in [-1, 1]
  (2 * sigmoid(logits) - 1, the pixel probabilities);
- diffusion: one step of the EMA denoiser, x_t (B, C, H, W), t (B,) int64 [, labels (B,) int64,
  the null class = num_classes] -> prediction (eps or v, as the run's model.objective): the
  sampling loop is the caller's (diffusers' schedulers, or format=diffusers for the whole pipeline).
A language model has no ONNX form here: its generation is a loop over a growing context with a cache, which
format=hf hands to transformers, whose tools own that export.

torch.onnx.export with dynamo=True, the exporter PyTorch maintains (the TorchScript one is
deprecated); it needs `onnxscript` and runs offline. It takes ~15 s per network on a loaded
2-core CPU, plus ~30 s the first time in a process.
"""

import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from genkit.errors import GenkitError, first_line
from genkit.formats.base import Exported, FormatUnsupported, write_folder
from genkit.models.diffusion import Diffusion
from genkit.models.gan import GAN
from genkit.models.nets.conditioning import conditioned
from genkit.models.vae import VAE

log = logging.getLogger("genkit")

FILE = "model.onnx"


class DecodedImages(nn.Module):
    """A VAE decoder's logits mapped to images in [-1, 1], as VAE.sample(mode=prior) returns them."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return torch.sigmoid(conditioned(self.decoder, z, labels)) * 2 - 1


def graph_of(model) -> tuple[nn.Module, tuple[torch.Tensor, ...], list[str], str]:
    """(network, example inputs, input names, output name) of the family's image-making network."""
    if not isinstance(model, GAN | VAE | Diffusion):
        raise FormatUnsupported(
            f"format=onnx writes the image-making network of a GAN, a VAE or a diffusion model, and this "
            f"checkpoint holds a {type(model).__name__}; export a text model with format=hf (transformers, whose "
            f"tools export it to ONNX with its cache) or format=safetensors."
        )
    batch = 2  # any size works at run time: the batch dimension is exported as dynamic
    labels = torch.arange(batch) % model.num_classes if model.conditional else None
    if isinstance(model, Diffusion):
        net = model.ema_net
        x_t = torch.randn(batch, *model.image_shape)
        inputs, names = (x_t, torch.tensor([0, model.process.timesteps - 1])), ["x_t", "t"]
        output = "prediction"
    else:
        net = model.generator if isinstance(model, GAN) else DecodedImages(model.decoder)
        inputs, names, output = (torch.randn(batch, model.latent_dim),), ["z"], "images"
    if labels is not None:
        inputs, names = (*inputs, labels), [*names, "labels"]
    return net, inputs, names, output


def export_onnx(net: nn.Module, inputs: tuple[torch.Tensor, ...], names: list[str], output: str, path: Path) -> None:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        torch.onnx.export(
            net.float().eval(),
            inputs,
            str(path),
            input_names=names,
            output_names=[output],
            dynamic_shapes=tuple({0: batch} for _ in inputs),
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def write_onnx(run: Exported, out: Path) -> Path:
    net, inputs, names, output = graph_of(run.model)

    def fill(folder: Path) -> None:
        try:
            export_onnx(net, inputs, names, output, folder / FILE)
        except Exception as err:  # torch.export's failures are long; their first line says what broke
            raise GenkitError(
                f"torch.onnx could not export the {type(net).__name__} network of {run.source} ({first_line(err)}). "
                "genkit's own networks export; a network of your own must be traceable by torch.export "
                "(no data-dependent Python branches)."
            ) from None

    write_folder(out, fill)
    shapes = ", ".join(f"{n} {tuple(['B', *x.shape[1:]])}" for n, x in zip(names, inputs, strict=True))
    log.info("ONNX: %s/%s takes %s and returns %s", out, FILE, shapes, output)
    return out
