"""What every training config shares: the model's config in a ``model`` field, the optimiser settings beside it.

A model's hyper-parameters live beside the model (``DCGANConfig`` in :mod:`hw5.models.dcgan`, ``RBMConfig``,
``VAEConfig``, ``ClassifierConfig``; each model takes its config), and a training config (``GANTraining``,
``RBMTraining``, ``VAETraining``, ``ClassifierTraining``) holds one of them plus what only training needs
(learning rate, batch size, seed...). Both are frozen dataclasses that validate at construction.

A checkpoint or an exported model records a run by one flat dict, :meth:`TrainingConfig.identity` (the model's
fields, then the training fields; the names do not overlap). Fields added after runs were already recorded are
left out while they hold the value that reproduces those runs (``ADDED``), so older run folders still resume
and older sidecars still read back (:meth:`TrainingConfig.from_identity`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, TypeVar

T = TypeVar("T", bound="TrainingConfig")


class TrainingConfig:
    """Mixin of the training configs (frozen dataclasses with a ``model`` field holding the model's config)."""

    ADDED: ClassVar[dict[str, Any]] = {}
    model: Any  # declared by each subclass as a dataclass field; a plain annotation here (the mixin is no dataclass)

    def identity(self) -> dict[str, Any]:
        """The run's flat record: the model's fields and the training fields, less the ``ADDED`` ones at the
        value that switches them off."""
        flat = dataclasses.asdict(self.model)
        training = dataclasses.fields(self)  # type: ignore[arg-type]
        flat.update({f.name: getattr(self, f.name) for f in training if f.name != "model"})
        return {k: v for k, v in flat.items() if k not in self.ADDED or v != self.ADDED[k]}

    @classmethod
    def from_identity(cls: type[T], record: dict[str, Any]) -> T:
        """The config that :meth:`identity` recorded as ``record`` (e.g. an exported model's ``config``)."""
        model_type = cls.__dataclass_fields__["model"].default_factory  # type: ignore[attr-defined]
        model_fields = {f.name for f in dataclasses.fields(model_type)}
        unknown = set(record) - model_fields - {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise ValueError(f"{cls.__name__}.from_identity: unknown fields {sorted(unknown)} (a record of another "
                             "kind of run?)")
        model = model_type(**{k: v for k, v in record.items() if k in model_fields})
        return cls(model=model, **{k: v for k, v in record.items() if k not in model_fields})  # type: ignore[call-arg]

    def with_model(self: T, **changes: Any) -> T:
        """A copy with the model's config changed, e.g. ``training.with_model(conditional=True)``."""
        return dataclasses.replace(self, model=dataclasses.replace(self.model, **changes))  # type: ignore[type-var]
