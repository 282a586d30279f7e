"""Every config rejects wrong types and ranges at construction, naming the config, the field and the value; the
training configs record runs by a flat identity that reads back and that older records still match."""

from __future__ import annotations

import dataclasses
import math

import pytest

from hw5.models.classifier import ClassifierConfig, LinearProbeConfig
from hw5.models.dcgan import DCGAN, DCGANConfig
from hw5.models.rbm import RBM, RBMConfig
from hw5.models.vae import CVAE, VAE, VAEConfig
from hw5.training.classifier import ClassifierTraining
from hw5.training.gan import GANTraining
from hw5.training.rbm import RBMTraining
from hw5.training.vae import VAETraining

CASES = [
    (DCGANConfig, {"latent_dim": 0}, "DCGANConfig.latent_dim must be an integer >= 1, got 0"),
    (DCGANConfig, {"latent_dim": 100.0}, "DCGANConfig.latent_dim must be an integer >= 1, got 100.0"),
    (GANTraining, {"beta1": 1.5}, r"GANTraining.beta1 must be a finite number in \[0, 1\), got 1.5"),
    (GANTraining, {"beta2": -0.1}, r"GANTraining.beta2 must be a finite number in \[0, 1\)"),
    (GANTraining, {"lr": math.inf}, r"GANTraining.lr must be a finite number in \(0, inf\), got inf"),
    (GANTraining, {"lr": math.nan}, "GANTraining.lr must be a finite number"),
    (GANTraining, {"batch_size": 0}, "GANTraining.batch_size must be an integer >= 1"),
    (GANTraining, {"generator_loss": "wasserstein"}, "GANTraining.generator_loss must be one of"),
    (GANTraining, {"precision": "fp16"}, "GANTraining.precision must be one of"),
    (GANTraining, {"channels_last": 1}, "GANTraining.channels_last must be True or False, got 1"),
    (GANTraining, {"model": {"latent_dim": 100}}, "GANTraining.model must be a DCGANConfig"),
    (RBMConfig, {"hidden": True}, "RBMConfig.hidden must be an integer >= 1, got True"),
    (RBMConfig, {"hidden": 0}, "RBMConfig.hidden must be an integer >= 1, got 0"),
    (RBMConfig, {"gibbs_steps": 0}, "RBMConfig.gibbs_steps must be an integer >= 1"),
    (RBMConfig, {"visible": -3}, "RBMConfig.visible must be an integer >= 1"),
    (RBMConfig, {"sigma": 0.0}, r"RBMConfig.sigma must be a finite number in \(0, inf\)"),
    (RBMConfig, {"visible": 3, "sigma": (1.0, -1.0, 1.0)}, "RBMConfig.sigma must be one positive finite float or 3"),
    (RBMConfig, {"visible": 3, "sigma": (1.0, 2.0)}, "RBMConfig.sigma must be one positive finite float or 3"),
    (RBMTraining, {"batch_size": 2.5}, "RBMTraining.batch_size must be an integer >= 1, got 2.5"),
    (RBMTraining, {"lr": math.inf}, r"RBMTraining.lr must be a finite number in \(0, inf\), got inf"),
    (RBMTraining, {"weight_decay": -1e-4}, "RBMTraining.weight_decay must be a finite number"),
    (RBMTraining, {"seed": -1}, "RBMTraining.seed must be an integer >= 0"),
    (RBMTraining, {"gradient": "numeric"}, "RBMTraining.gradient must be one of"),
    (RBMTraining, {"model": RBMConfig(visible=100)}, "RBMTraining.model.visible must be 784"),
    (VAEConfig, {"activation": "gelu"}, "VAEConfig.activation must be one of"),
    (VAEConfig, {"conditional": "yes"}, "VAEConfig.conditional must be True or False"),
    (VAETraining, {"ema_decay": 1.0}, r"VAETraining.ema_decay must be a finite number in \[0, 1\)"),
    (VAETraining, {"kl_warmup_epochs": 2.5}, "VAETraining.kl_warmup_epochs must be an integer >= 0"),
    (VAETraining, {"adam_eps": 0}, "VAETraining.adam_eps must be a finite number"),
    (ClassifierConfig, {"dropout": 1.0}, r"ClassifierConfig.dropout must be a finite number in \[0, 1\)"),
    (ClassifierConfig, {"num_classes": 0}, "ClassifierConfig.num_classes must be an integer >= 1"),
    (ClassifierTraining, {"max_shift": 30}, r"ClassifierTraining.max_shift must be an integer in \[0, 13\], got 30"),
    (ClassifierTraining, {"lr_decay": 0}, "ClassifierTraining.lr_decay must be a finite number"),
    (LinearProbeConfig, {"in_features": 0}, "LinearProbeConfig.in_features must be an integer >= 1"),
]
TRAINING = [GANTraining, RBMTraining, VAETraining, ClassifierTraining]


@pytest.mark.parametrize("cls, kwargs, message", CASES, ids=[f"{c.__name__}-{next(iter(k))}" for c, k, _ in CASES])
def test_bad_values_are_refused_at_construction(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("cls", [DCGANConfig, RBMConfig, VAEConfig, ClassifierConfig, *TRAINING])
def test_defaults_are_valid_frozen_and_equal_to_themselves(cls):
    config = cls()
    assert config == cls() and hash(config) == hash(cls())
    field = dataclasses.fields(config)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(config, field, getattr(config, field))


def test_models_are_built_from_their_configs_only():
    assert DCGAN(DCGANConfig(latent_dim=8)).generator.latent_dim == 8
    assert RBM(RBMConfig(visible=6, hidden=3)).W.shape == (3, 6)
    assert isinstance(VAEConfig(conditional=True).build(), CVAE) and type(VAEConfig().build()) is VAE
    with pytest.raises(TypeError, match=r"RBM\(config=...\) takes a RBMConfig, got 784; e.g. RBM\(RBMConfig"):
        RBM(784)  # the template's RBM(D, F, k) numbers: the error says how to write it now
    with pytest.raises(ValueError, match="VAE is not conditional but got VAEConfig\\(conditional=True"):
        VAE(VAEConfig(conditional=True))
    with pytest.raises(ValueError, match="CVAE is conditional"):
        CVAE(VAEConfig())


@pytest.mark.parametrize("cls", TRAINING)
def test_identity_is_flat_and_reads_back(cls):
    config = cls()
    record = config.identity()
    model_fields = {f.name for f in dataclasses.fields(config.model)}
    assert "model" not in record and all(not isinstance(v, dict) for v in record.values())
    assert set(record) == (model_fields | {f.name for f in dataclasses.fields(cls)}) - {"model"} - set(cls.ADDED)
    assert cls.from_identity(record) == config
    with pytest.raises(ValueError, match="unknown fields \\['nonsense'\\]"):
        cls.from_identity({**record, "nonsense": 1})


def test_identity_matches_the_records_written_before_model_configs():
    """The flat records of the committed runs (as their sidecars hold them) are what the new configs write, so
    run folders written before resume and exported configs read back."""
    assert RBMTraining(RBMConfig(hidden=16)).identity() == {
        "hidden": 16, "gibbs_steps": 5, "sigma": 1.0, "lr": 0.001, "weight_decay": 0.0, "batch_size": 128,
        "gradient": "analytic", "seed": 42}
    assert GANTraining().identity() == {"latent_dim": 100, "lr": 0.0002, "beta1": 0.5, "beta2": 0.999,
                                        "batch_size": 200, "generator_loss": "non_saturating", "precision": "fp32",
                                        "channels_last": True, "seed": 0}
    assert ClassifierTraining().identity() == {"width": 32, "feature_dim": 128, "dropout": 0.3, "lr": 0.002,
                                               "weight_decay": 0.0001, "batch_size": 128, "lr_decay": 0.7,
                                               "max_shift": 2, "seed": 0}
    assert VAETraining(VAEConfig(conditional=True), ema_decay=0.999).identity()["conditional"] is True
    assert RBMTraining(RBMConfig(hidden=16)).with_model(hidden=64) == RBMTraining(RBMConfig(hidden=64))
