"""The model contract (:mod:`hw5.models.base`) held by every model, and each generative model's ``sample()``
against an independent computation from the same random draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hw5.models import (CVAE, DCGAN, RBM, VAE, Classifier, ClassifierConfig, DCGANConfig, GenerativeModel,
                        LinearProbe, LinearProbeConfig, Model, RBMConfig, VAEConfig)

CONFIGS = [DCGANConfig(latent_dim=8), RBMConfig(hidden=4), VAEConfig(), VAEConfig(conditional=True),
           ClassifierConfig(width=4, feature_dim=8), LinearProbeConfig(6, 3)]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: type(c).__name__)
def test_every_config_builds_its_model_which_keeps_it(config):
    torch.manual_seed(0)
    model = config.build()
    torch.manual_seed(0)
    again = type(model)(config)
    assert isinstance(model, Model) and isinstance(model, model.config_class) is False
    assert model.config is config and isinstance(config, model.config_class)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert model.device == torch.device("cpu")
    with pytest.raises(TypeError, match=rf"{type(model).__name__}\(config=...\) takes a {type(config).__name__}"):
        type(model)({"not": "a config"})


def test_one_default_rule_and_which_models_are_generative():
    for cls in (DCGAN, RBM, VAE, CVAE, Classifier):
        assert cls().config == cls.config_class(**({"conditional": True} if cls is CVAE else {}))
    assert all(issubclass(cls, GenerativeModel) for cls in (DCGAN, RBM, VAE, CVAE))
    assert not issubclass(Classifier, GenerativeModel) and not issubclass(LinearProbe, GenerativeModel)
    with pytest.raises(ValueError, match="CVAE is conditional"):
        CVAE(VAEConfig())


def test_dcgan_sample_is_g_of_standard_normal_noise_mapped_to_unit_range():
    torch.manual_seed(0)
    gan = DCGAN(DCGANConfig(latent_dim=8)).eval()
    images = gan.sample(5, torch.Generator().manual_seed(3))
    z = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = ((gan.generator(z) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(images, expected)
    assert images.shape == (5, 1, 28, 28)


@pytest.mark.parametrize("conditional", [False, True])
def test_vae_sample_decodes_standard_normal_z_from_the_same_generator(conditional):
    torch.manual_seed(0)
    model = VAEConfig(conditional=conditional).build()
    classes = torch.tensor([0, 3, 9, 3])
    images = model.sample(4, classes, torch.Generator().manual_seed(5))
    z = torch.randn(4, 20, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        decoder_input = torch.cat([z, F.one_hot(classes, 10).float()], 1) if conditional else z  # [z, c], by hand
        expected = torch.sigmoid(model.fc4(F.relu(model.fc3(decoder_input)))).view(4, 1, 28, 28)
    torch.testing.assert_close(images, expected)
    assert not torch.allclose(images[0], images[1])  # not the same z for every sample


def test_cvae_encoder_and_decoder_read_the_class_after_the_data():
    """q(z | x, c) reads [x, onehot(c)] and p(x | z, c) reads [z, onehot(c)], in that order (built by hand)."""
    torch.manual_seed(0)
    model = CVAE()
    x, c = torch.rand(3, 1, 28, 28), torch.tensor([1, 7, 4])
    onehot = F.one_hot(c, 10).float()
    with torch.no_grad():
        mu, logvar = model.encode(x, c)
        by_hand = F.relu(torch.cat([x.view(3, 784), onehot], 1) @ model.fc1.weight.T + model.fc1.bias)
        torch.testing.assert_close(mu, model.fc21(by_hand))
        swapped = F.relu(torch.cat([onehot, x.view(3, 784)], 1) @ model.fc1.weight.T + model.fc1.bias)
        assert not torch.allclose(mu, model.fc21(swapped))
        z = torch.randn(3, 20)
        by_hand = model.fc4(F.relu(torch.cat([z, onehot], 1) @ model.fc3.weight.T + model.fc3.bias))
        torch.testing.assert_close(model.decode(z, c), by_hand)
        swapped = model.fc4(F.relu(torch.cat([onehot, z], 1) @ model.fc3.weight.T + model.fc3.bias))
        assert not torch.allclose(model.decode(z, c), swapped)


def _rbm() -> RBM:
    torch.manual_seed(0)
    rbm = RBM(RBMConfig(visible=6, hidden=3))
    with torch.no_grad():
        rbm.W.normal_(0, 0.5), rbm.b.normal_(), rbm.alpha.normal_()
    return rbm


@pytest.mark.parametrize("k", [1, 3, 5])
def test_a_k_step_gibbs_chain_is_k_steps_by_hand_on_the_same_generator(k):
    """CD-k's chain takes exactly k block-Gibbs steps: h_t ~ p(h | v_t), v_{t+1} ~ p(v | h_t), t = 0..k-1."""
    rbm = _rbm()
    v_0 = torch.randn(4, 6)
    chain = rbm.gibbs_chain(v_0, k, torch.Generator().manual_seed(2), collapsed=False)
    gen, v = torch.Generator().manual_seed(2), v_0
    for _ in range(k):
        h = (torch.rand(4, 3, generator=gen) < torch.sigmoid(rbm.alpha + (v / rbm.sigma) @ rbm.W.T)).float()
        mean = rbm.b + rbm.sigma * (h @ rbm.W)
        v = mean + rbm.sigma * torch.randn(4, 6, generator=gen)
    torch.testing.assert_close(chain.mean_k, mean.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chain.v_k, v.detach(), rtol=1e-5, atol=1e-5)


def test_rbm_sample_is_the_chain_from_the_all_off_visible_law():
    rbm = _rbm()
    samples = rbm.sample(4, steps=3, generator=torch.Generator().manual_seed(2))
    gen = torch.Generator().manual_seed(2)
    v_0 = rbm.b + rbm.sigma * torch.randn(4, 6, generator=gen)  # v_0 ~ N(b, sigma^2): every hidden unit off
    torch.testing.assert_close(samples, rbm.gibbs_chain(v_0.detach(), 3, gen).mean_k)
    assert samples.shape == (4, 6)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        rbm.sample(2, steps=0)


def test_generation_counts_are_checked_at_the_boundary():
    torch.manual_seed(0)
    for call, message in [(lambda: DCGAN(DCGANConfig(latent_dim=4)).sample(0), "n must be an integer >= 1, got 0"),
                          (lambda: VAE().sample(2.5), "n must be an integer >= 1, got 2.5"),
                          (lambda: CVAE().class_samples(-1), "n_per_class must be an integer >= 1"),
                          (lambda: VAE().interpolate(torch.rand(784), torch.rand(784), 0, 1, steps=1),
                           r"steps must be an integer >= 2, got 1")]:
        with pytest.raises(ValueError, match=message):
            call()
