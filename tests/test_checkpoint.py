"""Atomic writes, checkpoints (round trip, crash safety, config checks, safe loading), shipped weights;
damaged sidecars and weights (the error names the file and the fix), temporaries left by a kill."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

import hw5
from hw5 import checkpoint as ckpt
from hw5 import files, locations
from hw5.pretrained import available, export_pretrained, pretrained, pretrained_info
from hw5.models.classifier import Classifier, ClassifierConfig

REPO = Path(__file__).resolve().parent.parent


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


# ---------------------------------------------------------------- a tiny checkpoint to damage

def _tiny_checkpoint(directory: Path, epoch: int = 1) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    ckpt.save_checkpoint(directory, {"net": model}, {"width": 2}, {"epoch": epoch, "history": {}}, {"adam": opt})
    return model, opt


def _fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = nn.Linear(3, 2)
    return model, torch.optim.Adam(model.parameters(), lr=0.1)


# ---------------------------------------------------------------- damaged checkpoint.json

def _cut_short(sidecar: dict) -> str:
    return json.dumps(sidecar)[:40]  # a write cut short by a full disk: not JSON


def _without_files(sidecar: dict) -> str:
    return json.dumps({k: v for k, v in sidecar.items() if k != "files"})


def _without_trainer_digest(sidecar: dict) -> str:
    return json.dumps({**sidecar, "sha256": {"weights": sidecar["sha256"]["weights"]}})


def _a_list(sidecar: dict) -> str:
    return json.dumps([sidecar])


def _epoch_as_text(sidecar: dict) -> str:
    return json.dumps({**sidecar, "epoch": "3"})


def _not_utf8(sidecar: dict) -> bytes:
    return b"\xff\xfe" + json.dumps(sidecar).encode()


@pytest.mark.parametrize("damage, problem", [
    (_cut_short, "is not valid JSON"),
    (_not_utf8, "is not valid JSON"),
    (_without_files, "the required key(s) ['files'] are missing"),
    (_without_trainer_digest, "'sha256' holds no digest for files['trainer']"),
    (_a_list, "holds a JSON list, not an object"),
    (_epoch_as_text, "'epoch' is a str, not a int"),
])
def test_damaged_sidecar_raises_checkpoint_error_naming_file_and_fix(tmp_path, damage, problem):
    _tiny_checkpoint(tmp_path)
    path = tmp_path / "checkpoint.json"
    damaged = damage(json.loads(path.read_text()))
    path.write_bytes(damaged if isinstance(damaged, bytes) else damaged.encode())
    model, opt = _fresh()
    with pytest.raises(ckpt.CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path, {"net": model}, {"width": 2}, {"adam": opt})
    msg = str(err.value)
    assert f"{path} is damaged" in msg and problem in msg
    assert f"Delete the folder {tmp_path} to start the run afresh" in msg
    assert not isinstance(err.value.__cause__, KeyError)


def test_sidecar_of_a_newer_format_says_which_hw5_reads_it(tmp_path):
    _tiny_checkpoint(tmp_path)
    path = tmp_path / "checkpoint.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format": ckpt.FORMAT_VERSION + 1}))
    with pytest.raises(ckpt.CheckpointError, match=r"checkpoint format 2, but this hw5 reads format 1\. Load it "
                                                   r"with the hw5 version that wrote it, or update hw5"):
        ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})


def test_saving_over_a_damaged_sidecar_replaces_it(tmp_path):
    _tiny_checkpoint(tmp_path, epoch=1)
    (tmp_path / "checkpoint.json").write_text("{")
    _tiny_checkpoint(tmp_path, epoch=2)
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 2


# ---------------------------------------------------------------- corrupt shipped weights

@pytest.fixture()
def shipped_copy(tmp_path) -> Path:
    """A private copy of the shipped ``rbm_M16``: ``<tmp>/weights/rbm_M16`` (the real one is never touched)."""
    root = tmp_path / "weights"
    shutil.copytree(locations.SHIPPED_WEIGHTS / "rbm_M16", root / "rbm_M16")
    return root


def _flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))


def test_the_package_weights_count_as_shipped_and_a_copy_does_not(shipped_copy):
    assert ckpt.is_shipped(locations.SHIPPED_WEIGHTS / "rbm_M16")
    assert not ckpt.is_shipped(shipped_copy / "rbm_M16")


def test_corrupt_weights_in_a_folder_passed_to_pretrained_say_delete_the_folder(shipped_copy):
    folder = shipped_copy / "rbm_M16"
    assert isinstance(hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy), nn.Module)  # the copy loads
    _flip_last_byte(folder / "weights-final.safetensors")
    with pytest.raises(ckpt.CheckpointError) as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    msg = str(err.value)
    assert "does not match the SHA-256" in msg and str(folder / "weights-final.safetensors") in msg
    assert f"Delete the folder {folder}" in msg and "shipped" not in msg


def test_corrupt_shipped_weights_say_restore_never_delete(shipped_copy, monkeypatch):
    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", shipped_copy)  # the copy stands in for hw5/weights
    folder = shipped_copy / "rbm_M16"
    _flip_last_byte(folder / "weights-final.safetensors")
    with pytest.raises(ckpt.CheckpointError) as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    msg = str(err.value)
    assert "does not match the SHA-256" in msg and str(folder / "weights-final.safetensors") in msg
    assert "Delete" not in msg and "do not delete them" in msg
    assert "git checkout -- hw5/weights/rbm_M16" in msg and "reinstall hw5" in msg

    (folder / "weights-final.safetensors").unlink()
    with pytest.raises(ckpt.CheckpointError, match=r"is missing.*git checkout -- hw5/weights/rbm_M16") as err:
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert "Delete" not in str(err.value)

    (folder / "checkpoint.json").write_text("{")
    with pytest.raises(ValueError) as err:  # pretrained_info reads the sidecar first
        hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert str(folder / "checkpoint.json") in str(err.value) and "not valid JSON" in str(err.value)
    assert "Delete" not in str(err.value)
    with pytest.raises(ckpt.CheckpointError, match=r"is damaged: it is not valid JSON.*git checkout --"):
        ckpt.load_checkpoint(folder, {"model": nn.Linear(1, 1)})


# ---------------------------------------------------------------- temporaries left by a kill

def _killed_mid_write(target: Path) -> Path:
    """Run files.atomic_write in a child that SIGKILLs itself half-way; return the temporary it left."""
    code = textwrap.dedent(f"""
        import os, signal
        from hw5 import files
        def write(fh):
            fh.write(b'{{"epoch": 2, "hist')
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        files.atomic_write({str(target)!r}, write)
    """)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    left = [p for p in target.parent.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(left) == 1 and files.is_atomic_temporary(left[0]), left
    return left[0]


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_a_killed_write_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    _tiny_checkpoint(tmp_path, epoch=1)
    leftover = _killed_mid_write(tmp_path / "checkpoint.json")
    empty = tmp_path / ".weights-epoch0002.safetensors.ab_cd123.tmp"  # killed before its first byte
    empty.write_bytes(b"")
    not_ours = [tmp_path / "notes.tmp", tmp_path / ".notes.tmp", tmp_path / "keep.abcd1234.tmp",
                tmp_path / ".x.ABCD1234.tmp"]
    for p in not_ours:
        p.write_text("user file")
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 1  # the old checkpoint is intact
    assert leftover.exists() and empty.exists(), "a young temporary may be a save in progress: left alone"

    _tiny_checkpoint(tmp_path, epoch=2)
    assert not leftover.exists() and not empty.exists()
    assert all(p.exists() for p in not_ours), "only atomic_write's own temporaries are removed"
    assert ckpt.load_checkpoint(tmp_path, {"net": _fresh()[0]})["epoch"] == 2


def test_resume_removes_stale_temporaries_but_never_in_the_shipped_weights(tmp_path, shipped_copy, monkeypatch):
    run = tmp_path / "run"
    _tiny_checkpoint(run)
    stale = run / ".trainer-epoch0002.pt.k2j4_9zq.tmp"
    stale.write_bytes(b"half")
    _age(stale, 2 * ckpt.STALE_AFTER_S)
    model, opt = _fresh()
    ckpt.load_checkpoint(run, {"net": model}, {"width": 2}, {"adam": opt})
    assert not stale.exists()

    monkeypatch.setattr(locations, "SHIPPED_WEIGHTS", shipped_copy)
    in_shipped = shipped_copy / "rbm_M16" / ".checkpoint.json.k2j4_9zq.tmp"
    in_shipped.write_bytes(b"")
    _age(in_shipped, 2 * ckpt.STALE_AFTER_S)
    hw5.pretrained("rbm_M16", "cpu", directory=shipped_copy)
    assert in_shipped.exists(), "loading shipped weights writes nothing into the package folder"
