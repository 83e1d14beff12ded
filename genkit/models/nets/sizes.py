"""How deep an image network is for its image size: one stride-2 stage per doubling.

Every conv network of genkit (DCGAN, conv VAE, U-Net) halves its feature maps until they are
small (4 to 7 pixels), so a 28-pixel MNIST network keeps its two stages (28 -> 14 -> 7), a
32-pixel CIFAR one gets three (32 -> 16 -> 8 -> 4) and a 64-pixel one four, without overrides.
"""

from genkit.errors import GenkitError


def halvings(image_size: int, smallest: int = 4) -> int:
    """Stride-2 stages from image_size down to a map of `smallest` to 2 * smallest - 1 pixels:
    28 -> 2 (7 px), 32 -> 3 (4 px), 64 -> 4 (4 px), 48 -> 3 (6 px). At least one."""
    if image_size < 2 * smallest or image_size % 2:
        raise GenkitError(
            f"data.image_size={image_size} is too small or odd for genkit's conv networks: give an even size of at "
            f"least {2 * smallest} (28, 32 and 64 are the usual ones)."
        )
    n, size = 0, image_size
    while size % 2 == 0 and size // 2 >= smallest:
        size //= 2
        n += 1
    return n


def final_size(image_size: int) -> int:
    """The side of the smallest feature map: image_size // 2 ** halvings(image_size)."""
    return image_size // 2 ** halvings(image_size)


def unet_levels(
    image_size: int, channel_mults: tuple[int, ...] | None, attention_levels: tuple[int, ...] | None
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A U-Net's width multipliers per level (null: 1, then 2 for each halving the image allows)
    and the levels with attention (null: those at 8 px and below); genkit's U-Net and the
    diffusers one share this, so the same config builds the same levels in both."""
    if channel_mults is None:
        channel_mults = (1,) + (2,) * halvings(image_size)
    if attention_levels is None:
        attention_levels = tuple(level for level in range(len(channel_mults)) if image_size >> level <= 8)
    return tuple(channel_mults), tuple(attention_levels)
