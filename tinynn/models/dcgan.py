"""DCGAN (Radford et al., 2015): a transposed-conv generator and a strided-conv critic.

Sizes: 28×28 (start from 7×7, two ×2 upsamplings), 32×32 and 64×64 (start from 4×4).
The generator ends in ``tanh`` (images scaled to [-1, 1]); the discriminator returns one
logit per image, to be used with ``BCEWithLogitsLoss``. Weights start as in the paper:
conv N(0, 0.02), BatchNorm weight N(1, 0.02) and bias 0.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F


def _start_size(image_size: int) -> int:
    if image_size == 28:
        return 7
    if image_size in (32, 64):
        return 4
    raise ValueError(f"DCGAN: image_size must be 28, 32 or 64, got {image_size}")


def dcgan_init_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z (B, latent_dim) -> image (B, channels, size, size) in [-1, 1]."""

    def __init__(self, latent_dim: int = 100, channels: int = 1, feature_maps: int = 64, image_size: int = 28):
        super().__init__()
        self.latent_dim = latent_dim
        start = _start_size(image_size)
        upsamplings = int(round(math.log2(image_size // start)))
        width = feature_maps * 2 ** (upsamplings - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, width, start, 1, 0, bias=False),
                                   nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(upsamplings - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, z):
        if z.ndim == 2:
            z = z.reshape(z.shape[0], z.shape[1], 1, 1)
        return self.main(z)


class DCGANDiscriminator(nn.Module):
    """image (B, channels, size, size) -> real/fake logit (B,)."""

    def __init__(self, channels: int = 1, feature_maps: int = 64, image_size: int = 28):
        super().__init__()
        start = _start_size(image_size)
        downsamplings = int(round(math.log2(image_size // start)))
        width = feature_maps
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(downsamplings - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width * 2),
                       nn.LeakyReLU(0.2, True)]
            width *= 2
        layers.append(nn.Conv2d(width, 1, start, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        dcgan_init_(self)

    def forward(self, x):
        return self.main(x).reshape(x.shape[0])


def train_dcgan(generator: DCGANGenerator, discriminator: DCGANDiscriminator, batches: Iterable,
                steps: int | None = None, lr: float = 2e-4, betas: tuple = (0.5, 0.999),
                callback: Callable | None = None) -> dict:
    """The standard alternating GAN loop, with the non-saturating generator loss.

    ``batches`` yields real images scaled to [-1, 1] (or ``(images, labels)`` pairs). Per batch:
    1. discriminator: minimise ``BCE(D(x), 1) + BCE(D(G(z)), 0)`` (G's output detached);
    2. generator: minimise ``BCE(D(G(z)), 1)``, i.e. maximise log D(G(z)).
    Returns ``{"d_loss": [...], "g_loss": [...]}``; ``callback(step, d_loss, g_loss)`` is called per step.
    """
    from tinynn.optim import Adam

    opt_d = Adam(discriminator.parameters(), lr=lr, betas=betas)
    opt_g = Adam(generator.parameters(), lr=lr, betas=betas)
    history = {"d_loss": [], "g_loss": []}
    generator.train()
    discriminator.train()
    for step, batch in enumerate(batches):
        if steps is not None and step >= steps:
            break
        real = batch[0] if isinstance(batch, (tuple, list)) else batch
        n = real.shape[0]
        ones = tn.ones(n, device=real.device)
        zeros = tn.zeros(n, device=real.device)
        z = tn.randn(n, generator.latent_dim, device=real.device)
        fake = generator(z)

        opt_d.zero_grad()
        d_loss = (F.binary_cross_entropy_with_logits(discriminator(real), ones)
                  + F.binary_cross_entropy_with_logits(discriminator(fake.detach()), zeros))
        d_loss.backward()
        opt_d.step()

        opt_g.zero_grad()
        g_loss = F.binary_cross_entropy_with_logits(discriminator(fake), ones)
        g_loss.backward()
        opt_g.step()

        history["d_loss"].append(d_loss.item())
        history["g_loss"].append(g_loss.item())
        if callback is not None:
            callback(step, history["d_loss"][-1], history["g_loss"][-1])
    return history
