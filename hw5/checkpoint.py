"""Checkpoints: safetensors weights, a JSON sidecar, and (for resumable runs) optimizer state.

A checkpoint is a folder::

    checkpoint.json                 config, epoch, history, file names and SHA-256 digests
    weights-epoch0003.safetensors   every module's tensors, keys "<module>.<parameter>"
    trainer-epoch0003.pt            optimizer states (read back with torch.load(weights_only=True))

Each file is written atomically (:mod:`hw5.files`); the binaries first, ``checkpoint.json`` last. The
JSON is the commit point: until it is replaced, it still names the previous epoch's files, which are
deleted only after the new JSON is in place. An interruption at any moment therefore leaves a complete
checkpoint. The random state needs no blob: loops reseed at every epoch from ``(seed, epoch)``
(:func:`hw5.utils.epoch_seed`), both of which the JSON holds.

Shipped weights (``hw5/weights/<name>/``) use the same format without the trainer file. Nothing is
ever unpickled: weights come from safetensors and optimizer state through the weights-only loader.

Every problem raises :class:`CheckpointError` naming the file and the fix. The fix depends on the
folder: a run's folder can be deleted to start afresh, but a folder of the shipped weights must be
restored (``git checkout`` or a reinstall), never deleted. Temporary files that a kill mid-write left
behind are removed when a folder is saved to or resumed from.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from . import locations
from .files import _jsonable, atomic_write_bytes, read_json, remove_stale_temporaries, write_json

FORMAT_VERSION = 1
SIDECAR = "checkpoint.json"
# A reader leaves a temporary file younger than this alone: it may belong to a save in progress in
# another process (a checkpoint write takes well under a second). The next save removes it anyway.
STALE_AFTER_S = 60.0


class CheckpointError(ValueError):
    """A checkpoint does not fit what it is loaded into, or is incomplete; the message says which."""


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-normalised dict of a dataclass or mapping (tuples become lists, as after a JSON round trip); a
    training config is recorded by its flat :meth:`hw5.configs.TrainingConfig.identity`."""
    if hasattr(config, "identity"):
        config = config.identity()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    return json.loads(json.dumps(_jsonable(dict(config))))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state_tensors(modules: Mapping[str, torch.nn.Module]) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            # safetensors refuses shared or strided storage: store a compact CPU copy of each tensor.
            tensors[f"{name}.{key}"] = value.detach().to("cpu", copy=True).contiguous()
    return tensors


def is_shipped(directory: str | Path) -> bool:
    """Whether ``directory`` is (inside) the weights shipped with the package, ``hw5/weights``."""
    return Path(directory).resolve().is_relative_to(locations.SHIPPED_WEIGHTS.resolve())


def _fix(directory: Path) -> str:
    """What to do about a damaged checkpoint in ``directory``: delete a run, restore shipped weights."""
    if is_shipped(directory):
        rel = Path(directory).resolve().relative_to(locations.SHIPPED_WEIGHTS.resolve())
        target = "hw5/weights" + (f"/{rel.as_posix()}" if rel.parts else "")
        return (f"These are weights shipped with hw5: do not delete them. Restore them with "
                f"`git checkout -- {target}` in a source checkout of hw5, or reinstall hw5 "
                "(`pip install --force-reinstall --no-deps <the hw5 wheel or source folder>`).")
    return f"Delete the folder {directory} to start the run afresh (or export the weights into it again)."


_SIDECAR_TYPES = {"format": int, "modules": list, "config": dict, "epoch": int, "files": dict, "sha256": dict}


def read_sidecar(directory: str | Path) -> dict[str, Any]:
    """The parsed ``checkpoint.json`` of ``directory``, checked for what loading needs.

    Raises :class:`CheckpointError` naming the file, what is wrong with it (not JSON, a missing or
    mistyped key, a file without its digest, a newer format) and the fix (:func:`_fix`).
    """
    directory = Path(directory)
    path = directory / SIDECAR

    def damaged(problem: str) -> CheckpointError:
        return CheckpointError(f"{path} is damaged: {problem}. The checkpoint in {directory} cannot be "
                               f"loaded. {_fix(directory)}")

    try:
        sidecar = read_json(path)
    except ValueError as exc:  # JSONFileError: not UTF-8 or not JSON (e.g. cut short by a full disk)
        raise damaged(f"it is not valid JSON ({exc.__cause__ or exc})") from exc
    if not isinstance(sidecar, dict):
        raise damaged(f"it holds a JSON {type(sidecar).__name__}, not an object")
    absent = [key for key in _SIDECAR_TYPES if key not in sidecar]
    if absent:
        raise damaged(f"the required key(s) {absent} are missing")
    for key, kind in _SIDECAR_TYPES.items():
        if not isinstance(sidecar[key], kind) or (kind is int and isinstance(sidecar[key], bool)):
            raise damaged(f"{key!r} is a {type(sidecar[key]).__name__}, not a {kind.__name__}")
    if sidecar["format"] != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {sidecar['format']}, but this hw5 reads format {FORMAT_VERSION}. "
            "Load it with the hw5 version that wrote it, or update hw5."
        )
    if "weights" not in sidecar["files"]:
        raise damaged("'files' names no 'weights' file")
    for key, name in sidecar["files"].items():
        if not isinstance(name, str) or Path(name).name != name or not name:
            raise damaged(f"files[{key!r}] = {name!r} is not a file name in the folder")
        if not isinstance(sidecar["sha256"].get(key), str):
            raise damaged(f"'sha256' holds no digest for files[{key!r}]")
    return sidecar


def save_checkpoint(directory: str | Path, modules: Mapping[str, torch.nn.Module], config: Any,
                    state: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
                    tag: str | None = None) -> Path:
    """Write a checkpoint of ``modules`` (and ``optimizers``) into ``directory``; returns the sidecar path.

    ``config`` identifies what was trained (a dataclass or dict: loading into another config fails);
    ``state`` is JSON-able training state (it must hold ``epoch``; typically also ``history``).
    Temporary files left by a save that was killed mid-write are removed first.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(directory)  # the saver owns the folder: any temporary is a killed write's
    tag = tag or f"epoch{int(state['epoch']):04d}"
    try:
        old = read_sidecar(directory) if has_checkpoint(directory) else None
    except CheckpointError:
        old = None  # a damaged sidecar is replaced below; the files it named are merely not pruned

    files, digests = {}, {}
    weights = save_safetensors(_state_tensors(modules))
    files["weights"] = f"weights-{tag}.safetensors"
    digests["weights"] = _sha256(weights)
    atomic_write_bytes(directory / files["weights"], weights)
    if optimizers:
        buffer = io.BytesIO()
        torch.save({name: opt.state_dict() for name, opt in optimizers.items()}, buffer)
        files["trainer"] = f"trainer-{tag}.pt"
        digests["trainer"] = _sha256(buffer.getvalue())
        atomic_write_bytes(directory / files["trainer"], buffer.getvalue())

    sidecar = {"format": FORMAT_VERSION, "modules": sorted(modules), "config": config_dict(config),
               **dict(state), "files": files, "sha256": digests}
    write_json(directory / SIDECAR, sidecar)
    if old is not None:  # only now that the new sidecar is committed are the old files unreferenced
        for name in set(old["files"].values()) - set(files.values()):
            (directory / name).unlink(missing_ok=True)
    return directory / SIDECAR


def has_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a committed checkpoint (a ``checkpoint.json``; it may still be damaged)."""
    return (Path(directory) / SIDECAR).is_file()


def _read_verified(directory: Path, sidecar: dict, key: str) -> bytes:
    path = directory / sidecar["files"][key]
    if not path.is_file():
        raise CheckpointError(f"{path} is missing; the checkpoint in {directory} is incomplete. "
                              f"{_fix(directory)}")
    data = path.read_bytes()
    if _sha256(data) != sidecar["sha256"][key]:
        raise CheckpointError(f"{path} does not match the SHA-256 recorded in {directory / SIDECAR}; "
                              f"the file is corrupt. {_fix(directory)}")
    return data


def load_checkpoint(directory: str | Path, modules: Mapping[str, torch.nn.Module], config: Any = None,
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None) -> dict[str, Any]:
    """Load a checkpoint into ``modules`` (and ``optimizers``); returns the sidecar's dict.

    Raises :class:`CheckpointError` when ``checkpoint.json`` is damaged, when ``config`` is given and
    differs from the saved one (naming both), when the module names differ, or when a file is missing
    or corrupt. Temporary files older than :data:`STALE_AFTER_S` that a killed save left behind are
    removed, except in the shipped weights, which are only ever read (an installed hw5 never writes
    into its package folder).
    """
    directory = Path(directory)
    if not has_checkpoint(directory):
        raise CheckpointError(f"no checkpoint in {directory} ({SIDECAR} not found)")
    if not is_shipped(directory):
        remove_stale_temporaries(directory, older_than=STALE_AFTER_S)
    sidecar = read_sidecar(directory)
    if config is not None and sidecar["config"] != config_dict(config):
        raise CheckpointError(
            f"the checkpoint in {directory} was saved with config\n  {sidecar['config']}\n"
            f"but is being loaded with config\n  {config_dict(config)}\n"
            "Use the config it was trained with, or another checkpoint folder for the new config."
        )
    if sidecar["modules"] != sorted(modules):
        raise CheckpointError(f"the checkpoint in {directory} holds modules {sidecar['modules']}, "
                              f"not {sorted(modules)}")
    tensors = load_safetensors(_read_verified(directory, sidecar, "weights"))
    for name, module in modules.items():
        prefix = f"{name}."
        own = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(own)
        except RuntimeError as exc:
            raise CheckpointError(f"weights of {name!r} in {directory} do not fit the model: {exc}") from exc
    if optimizers:
        if "trainer" not in sidecar["files"]:
            raise CheckpointError(f"the checkpoint in {directory} holds no optimizer state (weights only)")
        buffer = io.BytesIO(_read_verified(directory, sidecar, "trainer"))
        saved = torch.load(buffer, map_location="cpu", weights_only=True)
        for name, opt in optimizers.items():
            opt.load_state_dict(saved[name])
    return sidecar
