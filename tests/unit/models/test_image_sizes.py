"""Every image network at 28, 32 and 64 pixels and 1 or 3 channels: one stride-2 stage per
doubling, the same parameters as before at 28 pixels (MNIST checkpoints still load)."""

import pytest
import torch
from torch import nn

from genkit.errors import GenkitError
from genkit.models.nets.conv_vae import Decoder, Encoder
from genkit.models.nets.dcgan import Discriminator, Generator
from genkit.models.nets.sizes import final_size, halvings
from genkit.models.nets.unet import UNet


@pytest.mark.parametrize("size,stages,final", [(28, 2, 7), (32, 3, 4), (64, 4, 4), (48, 3, 6), (16, 2, 4)])
def test_one_stage_per_doubling(size, stages, final):
    assert (halvings(size), final_size(size)) == (stages, final)


@pytest.mark.parametrize("size", [6, 7, 29])
def test_sizes_no_network_takes_are_one_paragraph(size):
    with pytest.raises(GenkitError, match=f"data.image_size={size}"):
        halvings(size)


def _strided(module: nn.Module) -> int:
    return sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) and m.stride == (2, 2) for m in module.modules())


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_gan_and_vae_networks_take_every_size(size, channels):
    z, labels = torch.randn(3, 16), torch.tensor([0, 4, 9])
    generator = Generator(latent_dim=16, channels=channels, image_size=size, width=8, num_classes=10)
    discriminator = Discriminator(channels=channels, image_size=size, width=8, num_classes=10)
    images = generator(z, labels)
    assert images.shape == (3, channels, size, size)
    assert discriminator(images, labels).shape == (3,)
    encoder = Encoder(channels=channels, image_size=size, latent_dim=16, width=8)
    decoder = Decoder(channels=channels, image_size=size, latent_dim=16, width=8)
    mean, logvar = encoder(images)
    assert mean.shape == logvar.shape == (3, 16) and decoder(mean).shape == images.shape
    for net in (generator, discriminator, encoder, decoder):
        assert _strided(net) == halvings(size), type(net).__name__


@pytest.mark.parametrize("size,levels,attention", [(28, 3, (2,)), (32, 4, (2, 3)), (64, 5, (3, 4))])
def test_unet_levels_follow_the_size(size, levels, attention):
    unet = UNet(channels=3, base=8, channel_mults=None, attention_levels=None, image_size=size, num_classes=10)
    assert len(unet.down) == levels
    with_attention = tuple(i for i, stages in enumerate(unet.down) if not isinstance(stages[0].attn, nn.Identity))
    assert with_attention == attention
    x = torch.randn(2, 3, size, size)
    assert unet(x, torch.tensor([1, 500]), torch.tensor([3, 10])).shape == x.shape


def test_mnist_networks_keep_their_parameters():
    """At 28 pixels the networks are the ones MNIST checkpoints were trained with: same names and shapes."""
    shapes = lambda net: {k: tuple(v.shape) for k, v in net.state_dict().items()}  # noqa: E731
    assert shapes(Generator()) == {
        "net.0.weight": (6272, 64), "net.1.weight": (6272,), "net.1.bias": (6272,), "net.1.running_mean": (6272,),
        "net.1.running_var": (6272,), "net.1.num_batches_tracked": (), "net.4.weight": (128, 64, 4, 4),
        "net.5.weight": (64,), "net.5.bias": (64,), "net.5.running_mean": (64,), "net.5.running_var": (64,),
        "net.5.num_batches_tracked": (), "net.7.weight": (64, 1, 4, 4), "net.7.bias": (1,),
    }  # fmt: skip
    assert shapes(Discriminator()) == {
        "net.0.weight": (64, 1, 4, 4), "net.0.bias": (64,), "net.2.weight": (128, 64, 4, 4), "net.3.weight": (128,),
        "net.3.bias": (128,), "net.3.running_mean": (128,), "net.3.running_var": (128,),
        "net.3.num_batches_tracked": (), "net.6.weight": (1, 6272), "net.6.bias": (1,),
    }  # fmt: skip
    assert shapes(Encoder()) == {
        "net.0.weight": (32, 1, 4, 4), "net.0.bias": (32,), "net.2.weight": (64, 32, 4, 4), "net.2.bias": (64,),
        "net.5.weight": (256, 3136), "net.5.bias": (256,), "net.7.weight": (64, 256), "net.7.bias": (64,),
    }  # fmt: skip
    assert shapes(Decoder()) == {
        "net.0.weight": (256, 32), "net.0.bias": (256,), "net.2.weight": (3136, 256), "net.2.bias": (3136,),
        "net.5.weight": (64, 32, 4, 4), "net.5.bias": (32,), "net.7.weight": (32, 1, 4, 4), "net.7.bias": (1,),
    }  # fmt: skip
    assert shapes(UNet(channel_mults=None, attention_levels=None)) == shapes(UNet(channel_mults=(1, 2, 2)))
