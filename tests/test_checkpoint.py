"""Atomic writes, checkpoints (round trip, crash safety, config checks, safe loading), shipped weights."""

from __future__ import annotations

import io
import json
import pickle
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from hw5 import checkpoint as ckpt
from hw5 import files
from hw5.pretrained import available, export_pretrained, pretrained, pretrained_info
from hw5.models.classifier import Classifier, ClassifierConfig


@dataclass(frozen=True)
class TinyConfig:
    width: int = 4
    lr: float = 0.1
    betas: tuple = (0.5, 0.9)


def _trained_pair(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = model(torch.randn(8, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


def _fresh_pair():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "result.json"
    files.write_json(target, {"v": 1})

    def half_then_crash(fh):
        fh.write(b'{"v": 2, "trunc')
        raise KeyboardInterrupt("power cut")

    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, half_then_crash)
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"], "no temporary file left behind"


def test_write_json_converts_tensors_and_non_finite(tmp_path):
    path = files.write_json(tmp_path / "m.json", {"a": torch.tensor(0.5), "b": [float("nan"), 1], "c": (1, 2)})
    assert json.loads(path.read_text()) == {"a": 0.5, "b": [None, 1], "c": [1, 2]}
    files.update_json(path, {"d": {"e": 3}})
    assert json.loads(path.read_text())["d"] == {"e": 3} and json.loads(path.read_text())["a"] == 0.5


def test_checkpoint_round_trip(tmp_path):
    model, opt = _trained_pair()
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": 3, "history": {"loss": [3.0, 2.0]}},
                         {"adam": opt})
    model2, opt2 = _fresh_pair()
    state = ckpt.load_checkpoint(tmp_path, {"net": model2}, TinyConfig(), {"adam": opt2})
    assert state["epoch"] == 3 and state["history"] == {"loss": [3.0, 2.0]}
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for i in s1:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(s1[i][key], s2[i][key])


def test_interrupted_save_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    model, opt = _trained_pair(0)
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": 1}, {"adam": opt})
    first = {k: v.clone() for k, v in model.state_dict().items()}
    model_b, opt_b = _trained_pair(1)

    def crash(*args, **kwargs):
        raise OSError("disk full while writing the sidecar")

    monkeypatch.setattr(ckpt, "write_json", crash)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, {"net": model_b}, TinyConfig(), {"epoch": 2}, {"adam": opt_b})
    monkeypatch.undo()
    restored, opt_r = _fresh_pair()
    state = ckpt.load_checkpoint(tmp_path, {"net": restored}, TinyConfig(), {"adam": opt_r})
    assert state["epoch"] == 1
    assert all(torch.equal(first[k], v) for k, v in restored.state_dict().items())


def test_old_epoch_files_are_pruned_after_commit(tmp_path):
    model, opt = _trained_pair()
    for epoch in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": epoch}, {"adam": opt})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json", "trainer-epoch0003.pt", "weights-epoch0003.safetensors"]


def test_config_mismatch_names_both_configs(tmp_path):
    model, opt = _trained_pair()
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(width=4), {"epoch": 1}, {"adam": opt})
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path, {"net": _fresh_pair()[0]}, TinyConfig(width=8))
    msg = str(err.value)
    assert "'width': 4" in msg and "'width': 8" in msg and str(tmp_path) in msg


def test_module_names_and_shapes_must_fit(tmp_path):
    model, opt = _trained_pair()
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": 1})
    with pytest.raises(ckpt.CheckpointError, match=r"holds modules \['net'\], not \['other'\]"):
        ckpt.load_checkpoint(tmp_path, {"other": model})
    with pytest.raises(ckpt.CheckpointError, match="do not fit the model"):
        ckpt.load_checkpoint(tmp_path, {"net": nn.Sequential(nn.Linear(3, 5))})
    with pytest.raises(ckpt.CheckpointError, match="holds no optimizer state"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh_pair()[0]}, optimizers={"adam": opt})
    with pytest.raises(ckpt.CheckpointError, match="no checkpoint in"):
        ckpt.load_checkpoint(tmp_path / "missing", {"net": model})


def test_corrupt_or_missing_file_is_detected(tmp_path):
    model, opt = _trained_pair()
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": 1}, {"adam": opt})
    weights = tmp_path / "weights-epoch0001.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(ckpt.CheckpointError, match="does not match the SHA-256"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh_pair()[0]})
    weights.unlink()
    with pytest.raises(ckpt.CheckpointError, match="is missing"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh_pair()[0]})


class Evil:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("unpickled arbitrary code",))


def test_optimizer_state_is_read_with_the_weights_only_loader(tmp_path):
    model, opt = _trained_pair()
    ckpt.save_checkpoint(tmp_path, {"net": model}, TinyConfig(), {"epoch": 1}, {"adam": opt})
    sidecar = json.loads((tmp_path / "checkpoint.json").read_text())
    buffer = io.BytesIO()
    torch.save({"adam": Evil()}, buffer)
    (tmp_path / sidecar["files"]["trainer"]).write_bytes(buffer.getvalue())
    sidecar["sha256"]["trainer"] = ckpt._sha256(buffer.getvalue())  # a consistent, but malicious, checkpoint
    (tmp_path / "checkpoint.json").write_text(json.dumps(sidecar))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh_pair()[0]}, optimizers={"adam": _fresh_pair()[1]})


def test_export_and_pretrained_round_trip(tmp_path):
    model = Classifier(ClassifierConfig(num_classes=3, width=4, feature_dim=8))
    export_pretrained("tiny", model, {"note": "test"}, {"epoch": 2, "history": {"loss": [1.0]}}, tmp_path)
    loaded = pretrained("tiny", device="cpu", directory=tmp_path)
    assert isinstance(loaded, Classifier) and not loaded.training
    assert loaded.config == model.config
    x = torch.rand(2, 1, 28, 28)
    model.eval()
    assert torch.equal(model(x), loaded(x))
    assert pretrained_info("tiny", directory=tmp_path)["history"] == {"loss": [1.0]}
    assert available(tmp_path) == ["tiny"]
    assert not any(p.name.startswith("trainer") for p in (tmp_path / "tiny").iterdir())


def test_pretrained_refuses_unknown_names_and_foreign_builders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shipped weights named 'nope'"):
        pretrained("nope", directory=tmp_path)
    with pytest.raises(ValueError, match="only hw5 models can be exported"):
        export_pretrained("x", nn.Linear(2, 2), {}, {}, tmp_path)
    model = Classifier(ClassifierConfig(num_classes=3, width=4, feature_dim=8))
    export_pretrained("t", model, {}, {}, tmp_path)
    sidecar = json.loads((tmp_path / "t" / "checkpoint.json").read_text())
    sidecar["builder"] = "os:system"
    (tmp_path / "t" / "checkpoint.json").write_text(json.dumps(sidecar))
    with pytest.raises(ckpt.CheckpointError, match="outside hw5"):
        pretrained("t", directory=tmp_path)
    sidecar["builder"] = "hw5.models.classifier:Classifier"
    sidecar["model_config"] = {"num_classes": 3, "width": 4, "feature_dim": 8, "depth": 2}  # another version's field
    (tmp_path / "t" / "checkpoint.json").write_text(json.dumps(sidecar))
    with pytest.raises(ckpt.CheckpointError, match="does not build a Classifier .*re-export"):
        pretrained("t", directory=tmp_path)
    del sidecar["model_config"]  # a training checkpoint, not exported weights
    (tmp_path / "t" / "checkpoint.json").write_text(json.dumps(sidecar))
    with pytest.raises(ckpt.CheckpointError, match="has no 'model_config'"):
        pretrained("t", directory=tmp_path)


def test_train_or_load_trains_exports_and_then_serves_the_shipped_copy(tmp_path, monkeypatch):
    from hw5 import locations
    from hw5.pretrained import train_or_load
    from hw5.settings import Settings

    calls = []

    def train(run_dir):
        calls.append(run_dir)
        return Classifier(ClassifierConfig(num_classes=3, width=4, feature_dim=8)), {"epoch_seconds": [1.0, 2.0], "loss": [3.0, 2.0]}

    settings = Settings(out=tmp_path, device="cpu")
    model, history = train_or_load("tiny", settings, 2, train, {"width": 4}, extra={"note": "x"})
    assert calls == [tmp_path / "runs" / "problem2" / "tiny"] and not model.training
    info = pretrained_info("tiny", directory=tmp_path / "weights")
    assert info["epoch"] == 2 and info["history"] == history and info["note"] == "x"
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", tmp_path / "weights")  # what was exported is now "shipped"
    loaded, shipped_history = train_or_load("tiny", settings.replace(use_shipped=True), 2, train, {})
    assert len(calls) == 1 and shipped_history == history
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(loaded(x), model(x))
