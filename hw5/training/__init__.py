"""One training loop per model family on one shared runner (:mod:`hw5.training.loop`) and shared policies
(:mod:`hw5.training.policies`). Every ``train_*`` takes ``(data..., config, epochs, *, keyword-only rest)`` and
returns the trained model with its history (or a small result dataclass that holds them).

``from hw5.training import train_vae, VAETraining`` imports every loop and training config from here.
"""

from .classifier import ClassifierTraining, train_classifier
from .gan import GANTraining, gan_step, train_gan
from .loop import Callback, Hook, Run, StepInfo, TrainingDiverged, fit
from .policies import EarlyStopping, KeepBest, MovingAverage
from .rbm import RBMTraining, cd_step, train_rbm
from .vae import PlainAndAveraged, Snapshot, VAETraining, train_plain_and_averaged, train_snapshots, train_vae

__all__ = ["Callback", "ClassifierTraining", "EarlyStopping", "GANTraining", "Hook", "KeepBest", "MovingAverage",
           "PlainAndAveraged", "RBMTraining", "Run", "Snapshot", "StepInfo", "TrainingDiverged", "VAETraining",
           "cd_step", "fit", "gan_step", "train_classifier", "train_gan", "train_plain_and_averaged", "train_rbm",
           "train_snapshots", "train_vae"]
