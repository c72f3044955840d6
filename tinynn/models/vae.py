"""Variational auto-encoder (Kingma & Welling, 2013) on flattened images.

The encoder outputs the mean ``mu`` and log-variance ``logvar`` of q(z|x); the
*reparameterisation trick* samples ``z = mu + exp(logvar/2)·eps`` with ``eps ~ N(0, I)``,
so the sample is a differentiable function of the encoder's outputs. The decoder gives
Bernoulli logits for every pixel. ``vae_loss`` is the negative ELBO:
``BCE(x̂, x) + KL(q(z|x) ‖ N(0, I))`` with ``KL = -½ Σ (1 + logvar - mu² - exp(logvar))``.
"""
from __future__ import annotations

import tinynn as tn
import tinynn.nn as nn
import tinynn.nn.functional as F


class VAE(nn.Module):
    def __init__(self, in_features: int = 784, hidden: int = 400, latent_dim: int = 20,
                 image_shape: tuple | None = (1, 28, 28)):
        super().__init__()
        self.in_features, self.latent_dim, self.image_shape = in_features, latent_dim, image_shape
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_logvar = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_features))

    def encode(self, x):
        h = self.encoder(x.reshape(x.shape[0], -1))
        return self.fc_mu(h), self.fc_logvar(h)

    def reparameterize(self, mu, logvar):
        """``mu + sigma·eps`` in training; the mean itself in eval mode."""
        if not self.training:
            return mu
        eps = tn.randn(*mu.shape, dtype=mu.dtype, device=mu.device)
        return mu + (logvar * 0.5).exp() * eps

    def decode(self, z):
        """Pixel logits (B, in_features); ``sigmoid`` gives probabilities."""
        return self.decoder(z)

    def forward(self, x):
        """Returns ``(reconstruction_logits, mu, logvar)``; logits are (B, in_features)."""
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar

    def sample(self, n: int, device=None):
        """``n`` images from the prior, as probabilities shaped like the input images."""
        with tn.no_grad():
            z = tn.randn(n, self.latent_dim, device=device)
            probs = tn.sigmoid(self.decode(z))
        return probs.reshape(n, *self.image_shape) if self.image_shape else probs


def vae_loss(recon_logits, x, mu, logvar, beta: float = 1.0, reduction: str = "mean"):
    """Negative ELBO per example (``reduction="mean"``, averaged over the batch) or summed (``"sum"``).

    ``x`` holds targets in [0, 1]; ``beta`` weighs the KL term (β-VAE).
    """
    target = x.reshape(x.shape[0], -1)
    reconstruction = F.binary_cross_entropy_with_logits(recon_logits, target, reduction="sum")
    kl = -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum()
    total = reconstruction + beta * kl
    if reduction == "sum":
        return total
    if reduction == "mean":
        return total / x.shape[0]
    raise ValueError(f"vae_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
