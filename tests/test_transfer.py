"""Transfer learning and fine-tuning: backbone sources, frozen vs trained, phases, feature cache.

Tiny models (resnet18 at width 0.125) on small slices of the built-in 'shapes' dataset; one real-data
end-to-end test on ../shared/data/cifar10-sub (skipped when it is absent). No network: TORCH_HOME points
into tmp_path and the hub download is replaced by a function that fails.
"""

from __future__ import annotations

import copy
import json
import os
import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from optai_tui.config import config_to_dict, validate_config
from optai_tui.errors import CheckpointError, ConfigError
from optai_tui.models import create_model
from optai_tui.models.resnet import ResNet
from optai_tui.presets import list_presets, load_preset
from optai_tui.training import backbones
from optai_tui.training import transfer as tr
from optai_tui.runs.backbones import find_source_run, resolve_backbone, source_architecture
from optai_tui.training.backbones import (
    imagenet_weights_file,
    load_backbone,
    load_imagenet_backbone,
)
from optai_tui.training.checkpoint import save_checkpoint
from optai_tui.runs.launch import new_session

from .helpers import event_dicts

CIFAR_SUB = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10-sub"
W = 0.125


@pytest.fixture(autouse=True)
def _offline(tmp_path, monkeypatch):
    """Torch hub cache in tmp_path; any download attempt fails at once (and is recorded)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("OPTAI_RUNS_DIR", str(tmp_path / "runs"))
    calls: list[str] = []

    def no_network(url, target, progress=None):
        calls.append(url)
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(backbones, "download_weights", no_network)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: one thread is much faster on a busy 2-core machine
    yield calls
    torch.set_num_threads(threads)


def _merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def make_cfg(**sections):
    base = {
        "data": {"dataset": "shapes", "subset": 256, "val_split": 0.25, "image_size": 16, "augment": False},
        "model": {"arch": "resnet18", "width": W},
        "optim": {"lr": 0.05},
        "schedule": {"name": "constant"},
        "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "progress_every": 0.05},
    }
    return validate_config(_merge(base, sections))


def backbone_file(path: Path, *, seed: int = 123, width: float = W, arch: str = "resnet18", wrap=None) -> dict:
    """A random backbone whose BN running statistics are not the defaults (so drift would show)."""
    torch.manual_seed(seed)
    m = create_model(arch, num_classes=7, in_channels=3, width=width)
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(16, 3, 16, 16) * 2 + 0.5)
    sd = {k: v.clone() for k, v in m.state_dict().items()}
    torch.save(wrap(sd) if wrap else sd, path)
    return sd


def backbone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if not k.startswith("classifier.")}


def events(trainer, kind: str) -> list[dict]:
    return [e for e in event_dicts(trainer.run_dir) if e["event"] == kind]


# ---------------------------------------------------------------------------------------------
# frozen backbone


def test_linear_probe_keeps_every_backbone_tensor_bit_identical(tmp_path):
    sd = backbone_file(tmp_path / "bb.pt")
    # augmentation on: the uncached path, the backbone runs (in eval mode) inside the training loop
    cfg = make_cfg(data={"augment": True}, transfer={"mode": "linear_probe", "backbone": str(tmp_path / "bb.pt")})
    head0 = {k: v.clone() for k, v in tr.build_model(cfg, 10, 3).get_classifier().state_dict().items()}
    trainer = new_session(cfg, tmp_path / "runs")
    summary = trainer.run()
    assert summary["status"] == "completed"

    after = backbone_state(trainer.trainer.model)
    expected = {k: v for k, v in sd.items() if not k.startswith("classifier.")}
    assert after.keys() == expected.keys()
    assert any("running_mean" in k for k in after) and any("num_batches_tracked" in k for k in after)
    for k, v in expected.items():
        assert torch.equal(after[k], v), f"backbone tensor {k} changed"
    head = trainer.trainer.model.get_classifier().state_dict()
    assert not torch.equal(head["weight"], head0["weight"]), "the head did not train"
    # only the head is optimised, and the saved checkpoint holds the untouched backbone
    head_ids = {id(p) for p in trainer.trainer.model.get_classifier().parameters()}
    assert {id(p) for g in trainer.trainer.optimizer.param_groups for p in g["params"]} == head_ids
    assert summary["trainable_params"] == sum(p.numel() for p in trainer.trainer.model.get_classifier().parameters())
    ckpt = torch.load(trainer.run_dir.last_checkpoint, weights_only=True)
    assert ckpt["phase"] == "linear_probe"
    for k, v in expected.items():
        assert torch.equal(ckpt["model"][k], v)
    # augmentation on and cache_features asked for: the run says why it is not caching
    assert any("data.augment" in e["message"] for e in events(trainer, "RunWarning"))
    assert "bb.pt" in summary["backbone"]


def test_feature_cache_runs_backbone_once_and_matches_uncached(tmp_path, monkeypatch):
    backbone_file(tmp_path / "bb.pt")
    seen = {"n": 0}
    original = ResNet.forward_features

    def counting(self, x):
        if x.shape[0] > 1:  # the engine's MAC count probes one image; the data batches are 64
            seen["n"] += x.shape[0]
        return original(self, x)

    monkeypatch.setattr(ResNet, "forward_features", counting)
    results = {}
    for cache in (True, False):
        seen["n"] = 0
        cfg = make_cfg(
            train={"epochs": 3},
            transfer={"mode": "linear_probe", "backbone": str(tmp_path / "bb.pt"), "cache_features": cache},
        )
        trainer = new_session(cfg, tmp_path / "runs")
        trainer.run()
        n_train, n_val = trainer.trainer.splits.train_x.shape[0], trainer.trainer.splits.val_x.shape[0]
        results[cache] = (trainer.trainer.history, seen["n"], n_train + n_val, n_val, trainer)
    hist_c, calls_c, per_pass, n_val, cached = results[True]
    hist_u, calls_u, _, _, _ = results[False]
    # training runs the backbone once per image when cached, every epoch otherwise; then the best checkpoint
    # is judged once on the validation images (training/evaluation.py), whole model, in both cases
    assert calls_c == per_pass + n_val, "the cached probe must run the backbone exactly once per image"
    assert calls_u == 3 * per_pass + n_val
    assert isinstance(cached.trainer.train_loader, tr.FeatureLoader) and cached.trainer.step_model is cached.trainer.model.get_classifier()
    assert cached.run_dir.read_summary()["feature_cache_seconds"] >= 0
    for hc, hu in zip(hist_c, hist_u, strict=True):
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert hc[key] == pytest.approx(hu[key], abs=1e-4), key


def test_feature_loader_interface():
    feats, labels = torch.randn(10, 4), torch.arange(10)
    fl = tr.FeatureLoader(feats, labels, batch_size=4, train=True, seed=3)
    assert len(fl) == 3 and fl.num_samples == 10
    fl.set_epoch(5)
    first = [y.tolist() for _, y in fl]
    fl.set_epoch(5)
    assert [y.tolist() for _, y in fl] == first  # reproducible per (seed, epoch)
    assert sorted(sum(first, [])) == list(range(10))
    fl.set_epoch(6)
    assert [y.tolist() for _, y in fl] != first
    for x, y in fl:
        assert torch.equal(x, feats[y])  # rows stay with their labels
    assert len(tr.FeatureLoader(feats, labels, batch_size=4, train=True, drop_last=True)) == 2
    val = tr.FeatureLoader(feats, labels, batch_size=4, train=False)
    assert torch.equal(torch.cat([y for _, y in val]), labels)
    # the same order as the tensor loader without augmentation, for the same seed and epoch
    from optai_tui.data import TensorLoader

    tl = TensorLoader(torch.zeros(10, 3, 2, 2, dtype=torch.uint8), labels, batch_size=4, train=True, mean=(0.5,), std=(0.5,),
                      crop_padding=0, flip=False, seed=3)
    tl.set_epoch(5)
    assert [y.tolist() for _, y in tl] == first


# ---------------------------------------------------------------------------------------------
# fine-tuning and phases


def test_finetune_param_groups_carry_backbone_lr_mult(tmp_path):
    sd = backbone_file(tmp_path / "bb.pt")
    cfg = make_cfg(train={"epochs": 1}, optim={"lr": 0.04},
                   transfer={"mode": "finetune", "backbone": str(tmp_path / "bb.pt"), "backbone_lr_mult": 0.25})
    trainer = new_session(cfg, tmp_path / "runs")
    trainer.run()
    groups = {g["name"]: g for g in trainer.trainer.optimizer.param_groups}
    assert set(groups) == {"head", "backbone"}
    assert groups["head"]["lr"] == pytest.approx(0.04)
    assert groups["backbone"]["lr"] == pytest.approx(0.04 * 0.25)
    head_ids = {id(p) for p in trainer.trainer.model.get_classifier().parameters()}
    assert {id(p) for p in groups["head"]["params"]} == head_ids
    assert len(groups["backbone"]["params"]) == sum(1 for _ in trainer.trainer.model.backbone_parameters())
    assert all(p.requires_grad for p in trainer.trainer.model.parameters())
    # the backbone trained (BN statistics too, batch norm is in train mode while fine-tuning)
    after = backbone_state(trainer.trainer.model)
    assert not torch.equal(after["conv1.weight"], sd["conv1.weight"])
    assert not torch.equal(after["bn1.running_mean"], sd["bn1.running_mean"])
    # the engine's reported lr is the head's (= optim.lr)
    assert events(trainer, "BatchEnd")[-1]["lr"] == pytest.approx(0.04)


def test_backbone_lr_mult_zero_freezes_the_whole_backbone():
    cfg = make_cfg(transfer={"mode": "finetune", "backbone": "x.pt", "backbone_lr_mult": 0.0})
    (phase,) = tr.plan_phases(cfg)
    assert phase.frozen_backbone  # batch norm in eval mode too, not only lr 0
    model = create_model("resnet18", 10, 3, W)
    groups = tr.configure_phase(model, tr.Phase("finetune", 0, 1, 0.1, False, 0.0))
    assert [g["name"] for g in groups] == ["head"]
    assert not any(p.requires_grad for p in model.backbone_parameters())
    tr.set_train_mode(model, phase)
    assert model.get_classifier().training and not model.bn1.training


def test_probe_then_finetune_switches_at_the_right_epoch(tmp_path):
    sd = backbone_file(tmp_path / "bb.pt")
    cfg = make_cfg(
        train={"epochs": 3},
        optim={"lr": 0.05},
        transfer={"mode": "probe_then_finetune", "backbone": str(tmp_path / "bb.pt"), "probe_epochs": 2,
                  "finetune_lr": 0.01, "backbone_lr_mult": 0.5},
    )
    snapshots = {}

    def sink(e):
        # (an epoch's EpochEnd may be logged once its checkpoint is on disk, during the next epoch: the state
        # the probe left is read as the fine-tuning phase starts, before its first step)
        if type(e).__name__ == "PhaseChanged" and e.phase == "finetune":
            snapshots["probed"] = backbone_state(trainer.trainer.model)
        if type(e).__name__ == "EpochEnd":
            snapshots[e.epoch] = backbone_state(trainer.trainer.model)

    trainer = new_session(cfg, tmp_path / "runs", sinks=[sink])
    trainer.run()
    phases = [(e["epoch"], e["phase"], e["lr"]) for e in events(trainer, "PhaseChanged")]
    assert phases == [(1, "linear_probe", 0.05), (3, "finetune", 0.01)]
    lrs = {e["epoch"]: e["lr"] for e in events(trainer, "BatchEnd")}
    assert lrs[1] == pytest.approx(0.05) and lrs[2] == pytest.approx(0.05) and lrs[3] == pytest.approx(0.01)
    groups = {g["name"]: g["lr"] for g in trainer.trainer.optimizer.param_groups}
    assert groups == pytest.approx({"head": 0.01, "backbone": 0.005})
    # frozen (and probed on cached features) for 2 epochs, then trained on images again
    assert all(torch.equal(snapshots["probed"][k], sd[k]) for k in snapshots["probed"])
    assert not torch.equal(snapshots[3]["conv1.weight"], sd["conv1.weight"])
    assert not isinstance(trainer.trainer.train_loader, tr.FeatureLoader) and trainer.trainer.step_model is trainer.trainer.model
    ckpt = torch.load(trainer.run_dir.last_checkpoint, weights_only=True)
    assert ckpt["phase"] == "finetune"


def test_build_model_without_weights_has_the_same_modules(tmp_path):
    backbone_file(tmp_path / "bb.pt")
    cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / "bb.pt"), "head": "mlp", "head_hidden": 8})
    loaded = tr.build_model(cfg, 10, 3)
    bare = tr.build_model(cfg, 10, 3, load_weights=False)  # what a resumed run fills from its checkpoint
    assert not hasattr(bare, "backbone_source")
    bare.load_state_dict(loaded.state_dict())  # strict: same keys and shapes
    (tmp_path / "bb.pt").unlink()
    tr.build_model(cfg, 10, 3, load_weights=False)  # the source is not needed any more


def test_mlp_head_follows_feature_size():
    for arch, width in (("resnet18", W), ("densenet_cifar", 0.25), ("vgg11", W), ("preact_resnet18", W)):
        model = create_model(arch, 10, 3, width)
        cfg = make_cfg(model={"arch": arch, "width": width}, data={"image_size": 32},
                       transfer={"mode": "linear_probe", "backbone": "x.pt", "head": "mlp", "head_hidden": 16,
                                 "head_dropout": 0.1})
        tr.install_head(model, cfg, 4)
        head = model.get_classifier()
        assert head[0].in_features == model.num_features and head[-1].out_features == 4
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)


# ---------------------------------------------------------------------------------------------
# checkpoint files


FORMATS = {
    "plain": lambda sd: sd,
    "kuangliu": lambda sd: {"net": {"module." + _kuangliu(k): v for k, v in sd.items()}, "acc": 93.0, "epoch": 199},
    "lightning": lambda sd: {"state_dict": {"module." + k: v for k, v in sd.items()}},
    "compiled": lambda sd: {"_orig_mod." + k: v for k, v in sd.items()},
}


def _kuangliu(key: str) -> str:  # kuangliu/pytorch-cifar calls the ResNet head 'linear'
    return key.replace("classifier.", "linear.")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_checkpoint_formats_load_the_backbone(tmp_path, fmt):
    sd = backbone_file(tmp_path / "w.pth", wrap=FORMATS[fmt])
    cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / "w.pth")})
    model = create_model("resnet18", 10, 3, W)
    src = load_backbone(model, cfg)
    for k, v in backbone_state(model).items():
        assert torch.equal(v, sd[k]), k
    assert src.loaded == len([k for k in sd if not k.startswith("classifier.")])
    assert len(src.ignored) == 2 and model.backbone_source is src


def test_our_checkpoint_format_and_its_architecture(tmp_path):
    sd = backbone_file(tmp_path / "tmp.pt")
    cfg_src = make_cfg()
    save_checkpoint(tmp_path / "ours.pt", {"arch": "resnet18", "config": config_to_dict(cfg_src), "epoch": 3, "model": sd})
    model = create_model("resnet18", 10, 3, W)
    src = load_backbone(model, make_cfg(transfer={"mode": "finetune", "backbone": str(tmp_path / "ours.pt")}))
    assert src.epoch == 3 and all(torch.equal(v, sd[k]) for k, v in backbone_state(model).items())
    assert source_architecture(str(tmp_path / "ours.pt")) == ("resnet18", W)
    # the checkpoint says what it is: another arch or width is refused before any tensor is compared
    with pytest.raises(CheckpointError, match=r"model.arch=resnet18 model.width=0.125"):
        load_backbone(create_model("resnet34", 10, 3, W),
                      make_cfg(model={"arch": "resnet34"}, transfer={"mode": "finetune", "backbone": str(tmp_path / "ours.pt")}))
    with pytest.raises(CheckpointError, match=r"model.width=0.125"):
        load_backbone(create_model("resnet18", 10, 3, 0.25),
                      make_cfg(model={"width": 0.25}, transfer={"mode": "finetune", "backbone": str(tmp_path / "ours.pt")}))


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    backbone_file(tmp_path / "r34.pth", arch="resnet34")
    cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / "r34.pth")})
    with pytest.raises(CheckpointError) as info:
        load_backbone(create_model("resnet18", 10, 3, W), cfg)
    msg = str(info.value)
    assert "do not fit a resnet18 backbone at width 0.125" in msg
    assert "unexpected (layer1.2." in msg and "\n" not in msg
    # same architecture, another width: the shapes are named
    backbone_file(tmp_path / "wide.pth", width=0.25)
    cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / "wide.pth")})
    with pytest.raises(CheckpointError, match=r"with another shape \(conv1.weight: file \(16, 3, 3, 3\) vs model \(8, 3, 3, 3\)"):
        load_backbone(create_model("resnet18", 10, 3, W), cfg)
    # a file that is not a model, a file that does not exist, an unpicklable file
    torch.save({"acc": torch.tensor(1.0), "epoch": 3, "notes": "x"}, tmp_path / "junk.pt")
    for bad, pattern in (("junk.pt", "holds no model weights"), ("missing.pt", "does not exist")):
        with pytest.raises(CheckpointError, match=pattern):
            load_backbone(create_model("resnet18", 10, 3, W),
                          make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / bad)}))
    (tmp_path / "evil.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load"):
        load_backbone(create_model("resnet18", 10, 3, W),
                      make_cfg(transfer={"mode": "linear_probe", "backbone": str(tmp_path / "evil.pt")}))


def test_torchvision_state_dict_file_into_tv_model(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, tmp_path / "tv.pth")
    cfg = validate_config({"model": {"arch": "tv_resnet18"}, "data": {"dataset": "shapes"},
                           "transfer": {"mode": "finetune", "backbone": str(tmp_path / "tv.pth"), "resize_to": 64}})
    model = create_model("tv_resnet18", 10, 3)
    src = load_backbone(model, cfg)
    body = model.body.state_dict()
    assert all(torch.equal(body[k], v) for k, v in ref.state_dict().items() if not k.startswith("fc."))
    assert set(src.ignored) == {"fc.weight", "fc.bias"}
    # a ResNet-34 file into a ResNet-18
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "tv34.pth")
    cfg = cfg.model_copy(update={"transfer": cfg.transfer.model_copy(update={"backbone": str(tmp_path / "tv34.pth")})})
    with pytest.raises(CheckpointError, match="do not fit a tv_resnet18"):
        load_backbone(create_model("tv_resnet18", 10, 3), cfg)


# ---------------------------------------------------------------------------------------------
# ImageNet weights through the torch hub cache


def test_imagenet_weights_load_from_the_hub_cache(tmp_path, _offline):
    url, fname, folder = imagenet_weights_file("tv_resnet18")
    assert fname == "resnet18-f37072fd.pth" and url.endswith("/" + fname)
    assert folder == tmp_path / "torch-home" / "hub" / "checkpoints"
    torch.manual_seed(1)
    ref = torchvision.models.resnet18(weights=None).state_dict()
    folder.mkdir(parents=True)
    torch.save(ref, folder / fname)

    cfg = validate_config({
        "model": {"arch": "tv_resnet18"},
        "data": {"dataset": "shapes", "subset": 48, "val_split": 0.5, "normalize": "imagenet", "augment": False},
        "transfer": {"mode": "linear_probe", "backbone": "imagenet", "resize_to": 64},
        "train": {"epochs": 1, "batch_size": 24, "device": "cpu"},
    })
    trainer = new_session(cfg, tmp_path / "runs")
    assert trainer.run()["status"] == "completed"
    body = trainer.trainer.model.body.state_dict()
    for k, v in ref.items():
        if not k.startswith("fc."):
            assert torch.equal(body[k], v), k
    assert _offline == []  # the cached file was used, nothing was downloaded
    assert fname in trainer.run_dir.read_summary()["backbone"]
    assert trainer.trainer.model.get_classifier().out_features == 10


def test_imagenet_weights_absent_offline_is_one_clear_line(tmp_path, _offline, monkeypatch):
    url, fname, folder = imagenet_weights_file("tv_resnet18")
    with pytest.raises(CheckpointError) as info:
        load_imagenet_backbone(create_model("tv_resnet18", 10, 3), "tv_resnet18")
    msg = str(info.value)
    assert fname in msg and url in msg and str(folder) in msg and "URLError" in msg
    assert "\n" not in msg
    assert _offline == [url]
    # through a run: refused before any run folder exists (preflight), naming the same file, url and folder
    cfg = validate_config({
        "model": {"arch": "tv_resnet18"},
        "data": {"dataset": "shapes", "subset": 16, "normalize": "imagenet"},
        "transfer": {"mode": "linear_probe", "backbone": "imagenet", "resize_to": 64},
        "train": {"epochs": 1, "device": "cpu"},
    })
    monkeypatch.setenv("OPTAI_OFFLINE", "1")  # preflight: this machine's network need not be down
    with pytest.raises(ConfigError) as refused:
        new_session(cfg, tmp_path / "runs")
    assert refused.value.field == "transfer.backbone" and fname in refused.value.message and url in refused.value.message
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    # a corrupt cached file is named as such
    folder.mkdir(parents=True, exist_ok=True)
    (folder / fname).write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="cannot read the cached ImageNet weights.*delete the file"):
        load_imagenet_backbone(create_model("tv_resnet18", 10, 3), "tv_resnet18")


def test_no_imagenet_weights_for_cifar_architectures():
    with pytest.raises(ConfigError, match="no published ImageNet weights"):
        validate_config({"model": {"arch": "preact_resnet18"}, "data": {"normalize": "imagenet"},
                         "transfer": {"mode": "linear_probe", "backbone": "imagenet"}})


# ---------------------------------------------------------------------------------------------
# previous runs as backbones


@pytest.fixture
def source_run(tmp_path):
    runs = tmp_path / "runs"
    cfg = make_cfg(name="bb-source", train={"epochs": 1}, data={"augment": True})
    trainer = new_session(cfg, runs)
    trainer.run()
    return trainer, runs


def test_run_as_backbone_by_id_name_and_folder(tmp_path, source_run):
    src_trainer, runs = source_run
    best = torch.load(src_trainer.run_dir.best_checkpoint, weights_only=True)["model"]
    run_id = src_trainer.run_dir.run_id
    for ref in (run_id, "bb-source", str(src_trainer.run_dir.path)):
        cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": ref})
        model = create_model("resnet18", 10, 3, W)
        src = load_backbone(model, cfg, resolve_backbone(cfg.transfer.backbone, runs))
        assert src.kind == "run" and src.run_id == run_id and src.epoch == 1
        assert all(torch.equal(v, best[k]) for k, v in backbone_state(model).items())
    # the architecture is the source run's: a mismatch is refused with the settings to use
    cfg = make_cfg(model={"arch": "resnet34"}, transfer={"mode": "linear_probe", "backbone": "bb-source"})
    expected = rf"run {run_id} is a resnet18 \(width 0.125\).*set model.arch=resnet18 model.width=0.125"
    with pytest.raises(CheckpointError, match=expected):
        load_backbone(create_model("resnet34", 10, 3, W), cfg, resolve_backbone(cfg.transfer.backbone, runs))
    cfg = make_cfg(model={"width": 0.25}, transfer={"mode": "linear_probe", "backbone": "bb-source"})
    with pytest.raises(CheckpointError, match=r"model.width: .*width 0.125, but model.width is 0.25"):
        load_backbone(create_model("resnet18", 10, 3, 0.25), cfg, resolve_backbone(cfg.transfer.backbone, runs))
    assert source_architecture("bb-source", runs) == ("resnet18", W)
    # unknown names get the close matches
    cfg = make_cfg(transfer={"mode": "linear_probe", "backbone": "bb-sourc"})
    with pytest.raises(CheckpointError, match="did you mean"):
        load_backbone(create_model("resnet18", 10, 3, W), cfg, resolve_backbone(cfg.transfer.backbone, runs))


def test_run_name_resolves_to_newest_completed_run(tmp_path, source_run):
    first, runs = source_run
    second = new_session(make_cfg(name="bb-source", train={"epochs": 1}, optim={"lr": 0.01}), runs)
    second.run()
    assert find_source_run("bb-source", runs).run_id == second.run_dir.run_id
    second.run_dir.update_summary(status="failed")
    assert find_source_run("bb-source", runs).run_id == first.run_dir.run_id
    # a transfer run records which run it used, and the probe trains from it
    trainer = new_session(make_cfg(train={"epochs": 1}, transfer={"mode": "linear_probe", "backbone": "bb-source"}), runs)
    trainer.run()
    assert first.run_dir.run_id in trainer.run_dir.read_summary()["backbone"]


def test_run_without_checkpoint(tmp_path):
    runs = tmp_path / "runs"
    trainer = new_session(make_cfg(name="nockpt", train={"epochs": 1, "checkpoint": False}), runs)
    trainer.run()
    with pytest.raises(CheckpointError, match="has no checkpoint"):
        resolve_backbone("nockpt", runs)


# ---------------------------------------------------------------------------------------------
# presets


def test_transfer_presets_validate_and_describe_themselves():
    refs = {r.name: r for r in list_presets() if r.name.startswith("transfer-")}
    assert set(refs) >= {
        "transfer-imagenet-resnet18-probe",
        "transfer-imagenet-resnet18-finetune",
        "transfer-imagenet-resnet18-probe-finetune",
        "transfer-shapes-backbone",
        "transfer-shapes-to-cifar10",
    }
    modes = {}
    for name, ref in refs.items():
        assert ref.description, name
        cfg = load_preset(name)
        modes[name] = cfg.transfer.mode
        if cfg.transfer.backbone == "imagenet":
            assert cfg.model.arch == "tv_resnet18" and cfg.data.normalize == "imagenet"
            assert cfg.transfer.resize_to == 224 and cfg.data.dataset == "cifar10"
    assert modes["transfer-imagenet-resnet18-probe"] == "linear_probe"
    assert load_preset("transfer-imagenet-resnet18-probe").data.augment is False  # so the features are cached
    assert modes["transfer-imagenet-resnet18-finetune"] == "finetune"
    assert modes["transfer-imagenet-resnet18-probe-finetune"] == "probe_then_finetune"
    step1, step2 = load_preset("transfer-shapes-backbone"), load_preset("transfer-shapes-to-cifar10")
    assert step1.transfer.mode == "scratch" and step1.data.dataset == "shapes"
    assert step2.transfer.backbone == step1.name == "shapes-backbone"
    assert (step2.model.arch, step2.model.width) == (step1.model.arch, step1.model.width)


# ---------------------------------------------------------------------------------------------
# the offline demonstration on real images


def _image_folder(root: Path, classes: list[str], n_train: int, n_test: int) -> Path:
    for split, n in (("train", n_train), ("test", n_test)):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for f in sorted((CIFAR_SUB / split / c).iterdir())[:n]:
                os.symlink(f.resolve(), d / f.name)
    return root


def _random_backbone_with_calibrated_bn(path: Path, data: Path, width: float) -> None:
    """A random, untrained backbone whose batch-norm statistics are measured on the target's training
    images (without that, random features are tiny and the comparison would be unfairly easy)."""
    from optai_tui.data import load_arrays

    sp = load_arrays("imagefolder", path=str(data))
    torch.manual_seed(0)
    m = create_model("resnet18", 5, 3, width)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.reset_running_stats()
            mod.momentum = None  # cumulative average over all batches
    mean, std = torch.tensor(sp.mean).view(1, 3, 1, 1), torch.tensor(sp.std).view(1, 3, 1, 1)
    m.train()
    with torch.no_grad():
        for i in range(0, len(sp.train_x), 250):
            m.forward_features((sp.train_x[i : i + 250].float() / 255 - mean) / std)
    torch.save(m.state_dict(), path)


@pytest.mark.slow
@pytest.mark.skipif(not (CIFAR_SUB / "train").is_dir(), reason="../shared/data/cifar10-sub is absent")
def test_offline_transfer_on_real_images_beats_a_random_backbone(tmp_path):
    classes = sorted(p.name for p in (CIFAR_SUB / "train").iterdir())
    assert len(classes) == 10
    first = _image_folder(tmp_path / "first5", classes[:5], 200, 50)
    second = _image_folder(tmp_path / "second5", classes[5:], 200, 50)
    runs = tmp_path / "runs"
    common = ["data.dataset=imagefolder", "model.width=0.125", "train.device=cpu"]

    # step 1: the offline backbone preset, trained on the first five classes
    step1 = load_preset("transfer-shapes-backbone", common + [f"data.path={first}", "train.epochs=6"])
    s1 = new_session(step1, runs).run()
    assert s1["status"] == "completed"

    # step 2: the transfer preset finds that run by its name and probes it on the other five classes
    step2 = load_preset("transfer-shapes-to-cifar10", common + [f"data.path={second}", "train.epochs=10"])
    probe = new_session(step2, runs)
    s2 = probe.run()
    assert s2["status"] == "completed" and "shapes-backbone" in s2["backbone"]
    assert isinstance(probe.trainer.train_loader, tr.FeatureLoader)

    # the same probe, same budget, on a random frozen backbone
    _random_backbone_with_calibrated_bn(tmp_path / "random.pt", second, 0.125)
    step2r = load_preset("transfer-shapes-to-cifar10",
                         common + [f"data.path={second}", "train.epochs=10", f"transfer.backbone={tmp_path / 'random.pt'}"])
    s3 = new_session(step2r, runs).run()
    print(f"\nbackbone on classes 0-4: {s1['best_val_acc']:.3f}; probe on classes 5-9: transferred "
          f"{s2['final_val_acc']:.3f} vs random {s3['final_val_acc']:.3f} (chance 0.200)")
    assert s2["final_val_acc"] > s3["final_val_acc"] + 0.08
    assert s2["final_val_acc"] > 0.35
    summary = json.loads((probe.run_dir.path / "summary.json").read_text())
    assert summary["trainable_params"] == 64 * 5 + 5
