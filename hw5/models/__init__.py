"""The models, pure maths: each is built from its config (:mod:`hw5.models.base` states the contract).

``from hw5.models import DCGAN, RBM, VAE, CVAE, VAEConfig`` imports every model and config from here.
"""

from .base import GenerativeModel, Model
from .classifier import Classifier, ClassifierConfig, LinearProbe, LinearProbeConfig
from .dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from .rbm import RBM, RBMConfig
from .vae import CVAE, VAE, VAEConfig

__all__ = ["CVAE", "DCGAN", "RBM", "VAE", "Classifier", "ClassifierConfig", "DCGANConfig", "Discriminator",
           "GenerativeModel", "Generator", "LinearProbe", "LinearProbeConfig", "Model", "RBMConfig", "VAEConfig"]
