"""hw5: reference solution of ECE 685D HW5 (DCGAN, Gaussian-Bernoulli RBM, VAE and C-VAE).

Importing the package does nothing but define names: no download, no printing, no file written.
Sub-modules: ``data``, ``models``, ``training``, ``metrics``, ``plotting``, ``checkpoint``, ``utils``.
"""

from .pretrained import available, pretrained, pretrained_info
from .utils import get_device, mode_name, quick_mode, seed_everything

__all__ = ["available", "get_device", "mode_name", "pretrained", "pretrained_info", "quick_mode",
           "seed_everything"]
__version__ = "0.1.0"
