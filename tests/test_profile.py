"""Profiling helpers: parameter counts, MACs, checkpoint size, latency, memory estimate."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optai_tui.models import create_model
from optai_tui.training.profile import (
    ModelProfile,
    activation_bytes_per_image,
    checkpoint_size_mb,
    count_macs,
    count_parameters,
    estimate_train_memory_mb,
    profile_model,
)


class ConvLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def test_count_parameters_trainable():
    model = ConvLinear()
    assert count_parameters(model) == (3 * 4 * 9 + 4 + 256 * 5 + 5,) * 2
    for p in model.conv.parameters():
        p.requires_grad_(False)
    assert count_parameters(model) == (112 + 1285, 1285)


def test_count_macs_by_hand():
    # conv: 8*8 outputs x 4 channels x (3*3*3) MACs; linear: 256 x 5
    expected = 8 * 8 * 4 * 27 + 256 * 5
    model = ConvLinear().train()
    assert count_macs(model, 8, in_channels=3) == expected
    assert model.training  # mode restored
    assert count_macs(model, (8, 8)) == expected


def test_count_macs_resnet_scales_with_area():
    model = create_model("resnet18", width=0.125)
    small, big = count_macs(model, 16), count_macs(model, 32)
    assert 3.5 < big / small < 4.5


def test_count_macs_reference_resnet18():
    # widely quoted figure for CIFAR ResNet-18: ~0.56 GMACs
    assert 0.55e9 < count_macs(create_model("resnet18"), 32) < 0.56e9


def test_checkpoint_size_matches_parameters():
    model = create_model("resnet18", width=0.25)
    total, _ = count_parameters(model)
    mb = checkpoint_size_mb(model)
    assert total * 4 / 2**20 < mb < total * 4 / 2**20 * 1.2


def test_profile_model_small_resnet():
    prof = profile_model("resnet18", width=0.125, throughput_batch=8, repeats=2, warmup=1)
    assert isinstance(prof, ModelProfile)
    assert prof.params == prof.trainable_params > 0
    assert prof.macs > 0 and prof.checkpoint_mb > 0
    assert prof.latency_ms > 0 and prof.throughput > 0
    d = prof.to_dict()
    assert d["name"] == "resnet18" and d["params"] == prof.params and d["throughput_batch"] == 8


def test_profile_model_other_shapes():
    prof = profile_model("vgg11", num_classes=3, in_channels=1, image_size=32, width=0.125,
                         throughput_batch=4, repeats=1, warmup=0)
    assert prof.in_channels == 1 and prof.num_classes == 3
    assert prof.params == count_parameters(create_model("vgg11", 3, 1, 0.125))[0]


def test_estimate_train_memory():
    model = ConvLinear()
    act = activation_bytes_per_image(model, 8)
    # input 3*8*8, conv 4*8*8, linear 5 (relu/flatten are functional here) floats
    assert act == 4 * (3 * 64 + 4 * 64 + 5)
    total, _ = count_parameters(model)
    mb = estimate_train_memory_mb(model, batch_size=10, image_size=8, in_channels=3)
    assert mb == pytest.approx((total * 4 * 3 + act * 10) / 2**20)
    big = create_model("resnet18", width=0.125)
    assert estimate_train_memory_mb(big, 128, 32) > estimate_train_memory_mb(big, 32, 32)
    assert not any(h for m in big.modules() for h in m._forward_hooks.values())  # hooks removed
