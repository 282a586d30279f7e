"""Every config rejects wrong types and ranges at construction, naming the config, the field and the value."""

from __future__ import annotations

import math

import pytest

from hw5.training.classifier import ClassifierConfig
from hw5.training.gan import GANConfig
from hw5.training.rbm import RBMConfig
from hw5.training.vae import VAEConfig

CASES = [
    (GANConfig, {"latent_dim": 0}, "GANConfig.latent_dim must be an integer >= 1, got 0"),
    (GANConfig, {"latent_dim": 100.0}, "GANConfig.latent_dim must be an integer >= 1, got 100.0"),
    (GANConfig, {"beta1": 1.5}, r"GANConfig.beta1 must be a finite number in \[0, 1\), got 1.5"),
    (GANConfig, {"beta2": -0.1}, r"GANConfig.beta2 must be a finite number in \[0, 1\)"),
    (GANConfig, {"lr": math.inf}, r"GANConfig.lr must be a finite number in \(0, inf\), got inf"),
    (GANConfig, {"lr": math.nan}, "GANConfig.lr must be a finite number"),
    (GANConfig, {"batch_size": 0}, "GANConfig.batch_size must be an integer >= 1"),
    (GANConfig, {"generator_loss": "wasserstein"}, "GANConfig.generator_loss must be one of"),
    (GANConfig, {"precision": "fp16"}, "GANConfig.precision must be one of"),
    (GANConfig, {"channels_last": 1}, "GANConfig.channels_last must be True or False, got 1"),
    (RBMConfig, {"batch_size": 2.5}, "RBMConfig.batch_size must be an integer >= 1, got 2.5"),
    (RBMConfig, {"lr": math.inf}, r"RBMConfig.lr must be a finite number in \(0, inf\), got inf"),
    (RBMConfig, {"hidden": True}, "RBMConfig.hidden must be an integer >= 1, got True"),
    (RBMConfig, {"weight_decay": -1e-4}, "RBMConfig.weight_decay must be a finite number"),
    (RBMConfig, {"seed": -1}, "RBMConfig.seed must be an integer >= 0"),
    (VAEConfig, {"activation": "gelu"}, "VAEConfig.activation must be one of"),
    (VAEConfig, {"ema_decay": 1.0}, r"VAEConfig.ema_decay must be a finite number in \[0, 1\)"),
    (VAEConfig, {"kl_warmup_epochs": 2.5}, "VAEConfig.kl_warmup_epochs must be an integer >= 0"),
    (VAEConfig, {"conditional": "yes"}, "VAEConfig.conditional must be True or False"),
    (VAEConfig, {"adam_eps": 0}, "VAEConfig.adam_eps must be a finite number"),
    (ClassifierConfig, {"dropout": 1.0}, r"ClassifierConfig.dropout must be a finite number in \[0, 1\)"),
    (ClassifierConfig, {"max_shift": 30}, r"ClassifierConfig.max_shift must be an integer in \[0, 13\], got 30"),
    (ClassifierConfig, {"lr_decay": 0}, "ClassifierConfig.lr_decay must be a finite number"),
]


@pytest.mark.parametrize("cls, kwargs, message", CASES, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in CASES])
def test_bad_values_are_refused_at_construction(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [GANConfig, RBMConfig, VAEConfig, ClassifierConfig])
def test_defaults_are_valid(cls):
    cls()
