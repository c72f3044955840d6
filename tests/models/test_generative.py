"""DCGAN, VAE, U-Net and Siamese networks: shapes, losses against their formulas, training steps."""
from __future__ import annotations

import numpy as np
import pytest

import tinynn as tn
import tinynn.nn.functional as F
from tinynn import models

from model_helpers import assert_state_dict_round_trip, loss_after_steps


@pytest.mark.parametrize("size", [28, 32, 64])
def test_dcgan_shapes(size):
    generator = models.DCGANGenerator(latent_dim=8, channels=1, feature_maps=4, image_size=size)
    discriminator = models.DCGANDiscriminator(channels=1, feature_maps=4, image_size=size)
    images = generator(tn.randn(3, 8))
    assert tuple(images.shape) == (3, 1, size, size)
    assert np.abs(images.numpy()).max() <= 1.0  # tanh output
    assert tuple(discriminator(images).shape) == (3,)


def test_dcgan_bad_size_and_init():
    with pytest.raises(ValueError, match="image_size"):
        models.DCGANGenerator(image_size=48)
    generator = models.DCGANGenerator(latent_dim=8, feature_maps=16)
    first = generator.main[0].weight.numpy()
    assert abs(first.std() - 0.02) < 0.005  # N(0, 0.02) as in the paper


def test_train_dcgan_runs_and_reports_losses(tmp_path):
    tn.manual_seed(0)
    generator = models.DCGANGenerator(latent_dim=8, feature_maps=4, image_size=28)
    discriminator = models.DCGANDiscriminator(feature_maps=4, image_size=28)
    real = tn.rand(4, 1, 28, 28) * 2 - 1
    before = {k: v.numpy().copy() for k, v in generator.state_dict().items()}
    calls = []
    history = models.train_dcgan(generator, discriminator, [(real, None)] * 3, steps=2,
                                 callback=lambda *args: calls.append(args))
    assert len(history["d_loss"]) == len(history["g_loss"]) == 2 and len(calls) == 2
    assert all(np.isfinite(history["d_loss"])) and all(np.isfinite(history["g_loss"]))
    after = generator.state_dict()
    assert any(not np.array_equal(before[k], after[k].numpy()) for k in before)  # the generator learned
    assert_state_dict_round_trip(generator, models.DCGANGenerator(latent_dim=8, feature_maps=4), tmp_path)


def test_vae_shapes_loss_formula_and_training(tmp_path):
    model = models.VAE(in_features=784, hidden=32, latent_dim=4)
    x = tn.rand(5, 1, 28, 28)
    logits, mu, logvar = model(x)
    assert tuple(logits.shape) == (5, 784) and tuple(mu.shape) == (5, 4) and tuple(logvar.shape) == (5, 4)
    loss = models.vae_loss(logits, x, mu, logvar)
    # Negative ELBO by hand: BCE summed over pixels + KL(N(mu, sigma²) ‖ N(0, 1)), averaged over the batch.
    p = 1 / (1 + np.exp(-logits.numpy()))
    t = x.numpy().reshape(5, -1)
    bce = -(t * np.log(p) + (1 - t) * np.log(1 - p)).sum()
    m, lv = mu.numpy(), logvar.numpy()
    kl = -0.5 * (1 + lv - m ** 2 - np.exp(lv)).sum()
    assert loss.item() == pytest.approx((bce + kl) / 5, rel=1e-4)
    assert models.vae_loss(logits, x, mu, logvar, reduction="sum").item() == pytest.approx(bce + kl, rel=1e-4)

    model.eval()  # eval: z is the mean, so the loss is deterministic
    mu_eval, _ = model.encode(x)
    np.testing.assert_allclose(model.reparameterize(mu_eval, mu_eval).numpy(), mu_eval.numpy())
    model.train()
    tn.manual_seed(1)

    def loss_fn(m, batch):
        tn.manual_seed(1)  # same noise before and after the step
        logits, mu, logvar = m(batch)
        return models.vae_loss(logits, batch, mu, logvar)
    before, after = loss_after_steps(model, x, loss_fn, steps=3, lr=1e-3, optimizer="adam")
    assert after < before
    assert tuple(model.sample(3).shape) == (3, 1, 28, 28)
    assert_state_dict_round_trip(model, models.VAE(784, 32, 4), tmp_path)


def test_vae_reparameterisation_is_differentiable():
    model = models.VAE(in_features=6, hidden=5, latent_dim=2, image_shape=None)
    mu = tn.zeros(3, 2, requires_grad=True)
    logvar = tn.zeros(3, 2, requires_grad=True)
    model.reparameterize(mu, logvar).sum().backward()
    np.testing.assert_allclose(mu.grad.numpy(), 1.0)  # dz/dmu = 1
    assert np.abs(logvar.grad.numpy()).sum() > 0  # dz/dlogvar = eps·sigma/2


@pytest.mark.parametrize("size", [(28, 28), (30, 27)])
def test_unet_keeps_the_resolution(size, tmp_path):
    model = models.UNet(in_channels=1, out_channels=2, base_channels=4, depth=2)
    x = tn.randn(2, 1, *size)
    assert tuple(model(x).shape) == (2, 2, *size)
    if size == (28, 28):
        target = tn.randn(2, 2, *size)
        before, after = loss_after_steps(model, x, lambda m, b: F.mse_loss(m(b), target), steps=2, lr=0.01,
                                         optimizer="adam")
        assert after < before
        assert_state_dict_round_trip(model, models.UNet(1, 2, 4, 2), tmp_path)


def test_contrastive_and_triplet_losses_match_formulas():
    rng = np.random.default_rng(0)
    a, b, c = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(3))
    same = np.array([1, 0, 1, 0, 0, 1], dtype=np.float32)
    d = np.linalg.norm(a - b + 1e-6, axis=1)
    expected = (same * d ** 2 + (1 - same) * np.maximum(0, 1.5 - d) ** 2).mean()
    got = models.contrastive_loss(tn.from_numpy(a), tn.from_numpy(b), tn.from_numpy(same), margin=1.5)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    d_ap = np.linalg.norm(a - b + 1e-6, axis=1)
    d_an = np.linalg.norm(a - c + 1e-6, axis=1)
    expected = np.maximum(0, d_ap - d_an + 1.0).mean()
    got = models.triplet_loss(tn.from_numpy(a), tn.from_numpy(b), tn.from_numpy(c), margin=1.0)
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parity
def test_triplet_loss_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    a, p, n = (rng.standard_normal((5, 3)).astype(np.float32) for _ in range(3))
    expected = torch.nn.functional.triplet_margin_loss(torch.tensor(a), torch.tensor(p), torch.tensor(n), margin=0.7)
    got = models.triplet_loss(tn.from_numpy(a), tn.from_numpy(p), tn.from_numpy(n), margin=0.7)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_siamese_shares_weights_and_learns(tmp_path):
    model = models.SiameseNetwork(embedding_dim=8)
    x1, x2 = tn.randn(4, 1, 28, 28), tn.randn(4, 1, 28, 28)
    e1, e2 = model(x1, x2)
    assert tuple(e1.shape) == (4, 8)
    np.testing.assert_allclose(model(x1).numpy(), e1.numpy(), atol=1e-6)  # one network for every input
    same = tn.tensor([1.0, 0.0, 1.0, 0.0])
    before, after = loss_after_steps(model, (x1, x2), lambda m, b: models.contrastive_loss(*m(*b), same),
                                     steps=2, lr=1e-3, optimizer="adam")
    assert after < before
    anchor, positive, negative = model(x1, x1 * 0.9, x2)
    assert tuple(negative.shape) == (4, 8)
    assert_state_dict_round_trip(model, models.SiameseNetwork(embedding_dim=8), tmp_path)
