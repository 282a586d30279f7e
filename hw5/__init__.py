"""hw5: reference solution of ECE 685D HW5 (DCGAN, Gaussian-Bernoulli RBM, VAE and C-VAE).

Importing the package does nothing but define names: no download, no printing, no file written, no
environment read. Sub-modules: ``data``, ``models``, ``training``, ``metrics``, ``plotting``, ``output``,
``settings``, ``checkpoint``, ``utils``.
"""

from .pretrained import available, pretrained, pretrained_info
from .settings import Settings
from .utils import get_device, seed_everything

__all__ = ["Settings", "available", "get_device", "pretrained", "pretrained_info", "seed_everything"]
__version__ = "0.1.0"
