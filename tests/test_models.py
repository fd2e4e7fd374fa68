"""Model registry, CIFAR families, head API and torchvision wrappers (CPU, tiny inputs)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from optai_tui.errors import CheckpointError, ConfigError, UnknownNameError
from optai_tui.models import (
    ARCHITECTURES,
    FAMILIES,
    ImageClassifier,
    architecture_info,
    architecture_names,
    create_model,
    get_model_info,
    list_models,
    register_model,
)
from optai_tui.models.registry import _unregister

REFERENCE_PARAMS = {
    "resnet18": 11_173_962,
    "resnet34": 21_282_122,
    "resnet50": 23_520_842,
    "resnet101": 42_512_970,
    "resnet152": 58_156_618,
    "preact_resnet18": 11_171_146,
    "preact_resnet34": 21_279_306,
    "preact_resnet50": 23_509_066,
    "preact_resnet101": 42_501_194,
    "preact_resnet152": 58_144_842,
    "densenet121": 6_956_298,
    "densenet169": 12_493_322,
    "densenet201": 18_104_330,
    "densenet161": 26_482_378,
    "densenet_cifar": 1_000_618,
    "vgg11": 9_231_114,
    "vgg13": 9_416_010,
    "vgg16": 14_728_266,
    "vgg19": 20_040_522,
}
TV_MODELS = ["tv_densenet121", "tv_resnet18", "tv_resnet34", "tv_resnet50", "tv_vgg11_bn", "tv_vgg16_bn"]
SMALL = {"resnet": "resnet18", "preact_resnet": "preact_resnet18", "densenet": "densenet_cifar", "vgg": "vgg11"}
BOTTLENECKS = ["resnet50", "preact_resnet50", "densenet121"]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- registry ----------------------------------------------------------------------------------


def test_registry_lists_everything():
    assert set(list_models(kind="cifar")) == set(REFERENCE_PARAMS)
    assert list_models(kind="imagenet") == TV_MODELS
    assert list_models() == sorted(list(REFERENCE_PARAMS) + TV_MODELS)


def test_list_models_filters():
    assert list_models(family="vgg") == ["tv_vgg11_bn", "tv_vgg16_bn", "vgg11", "vgg13", "vgg16", "vgg19"]
    assert list_models(family="vgg", kind="cifar") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert list_models(family="densenet", kind="imagenet") == ["tv_densenet121"]
    assert list_models(family="preact_resnet", kind="imagenet") == []
    assert list_models(family="nope") == []


def test_model_info():
    info = get_model_info("resnet18")
    assert (info.family, info.kind, info.default_image_size, info.pretrained) == ("resnet", "cifar", 32, None)
    tv = get_model_info("tv_resnet18")
    assert (tv.kind, tv.default_image_size, tv.pretrained) == ("imagenet", 224, "ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(AttributeError):
        info.family = "vgg"  # frozen
    assert info.to_dict()["name"] == "resnet18"


def test_every_family_is_described():
    for name in list_models():
        assert get_model_info(name).family in FAMILIES
        assert get_model_info(name).description
    assert all(len(text) > 40 for text in FAMILIES.values())


def test_pretrained_strings_resolve_without_download():
    for name in TV_MODELS:
        weights = torchvision.models.get_weight(get_model_info(name).pretrained)
        assert str(weights) == get_model_info(name).pretrained


def test_catalogue_is_the_registry_without_torch():
    """The schema's torch-free facts and the registered builders' facts are one and the same."""
    assert set(ARCHITECTURES) == set(list_models())
    for name in list_models():
        assert architecture_info(name) == get_model_info(name), name
    for kind in ("cifar", "imagenet"):
        assert architecture_names(kind=kind) == list_models(kind=kind)


def test_registering_a_catalogued_name_with_other_facts_is_refused():
    from optai_tui.models import registry

    builder = registry._BUILDERS["vgg11"]
    _unregister("vgg11")
    try:
        with pytest.raises(ValueError, match=r"'vgg11' disagrees with models/catalog.py: min_image_size 16 here, 32 there"):
            register_model("vgg11", family="vgg", kind="cifar", min_image_size=16, default_image_size=32,
                           description=ARCHITECTURES["vgg11"].description)
        assert "vgg11" not in list_models()
    finally:
        register_model(**ARCHITECTURES["vgg11"].to_dict())(builder)  # the catalogue's facts are accepted
    assert get_model_info("vgg11") == ARCHITECTURES["vgg11"]


def test_duplicate_registration_refused():
    with pytest.raises(ValueError, match="already registered"):

        @register_model("resnet18", family="resnet", kind="cifar", min_image_size=8, default_image_size=32)
        def again(num_classes=10, in_channels=3, width=1.0):  # pragma: no cover
            raise AssertionError


def test_register_new_model_and_bad_fields():
    @register_model("tiny_test_net", family="vgg", kind="cifar", min_image_size=1, default_image_size=32)
    def tiny(num_classes=10, in_channels=3, width=1.0):
        return nn.Linear(in_channels, num_classes)

    try:
        assert "tiny_test_net" in list_models(family="vgg")
        assert isinstance(create_model("tiny_test_net", num_classes=4), nn.Linear)
    finally:
        _unregister("tiny_test_net")
    assert "tiny_test_net" not in list_models()
    with pytest.raises(ValueError, match="family"):
        register_model("x_net", family="mobilenet", kind="cifar", min_image_size=1, default_image_size=32)
    with pytest.raises(ValueError, match="kind"):
        register_model("x_net", family="vgg", kind="tiny", min_image_size=1, default_image_size=32)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError) as err:
        create_model("resnet19")
    assert "resnet18" in err.value.suggestions
    assert err.value.field == "model.arch"
    assert err.value.kind == "architecture"
    assert "did you mean" in str(err.value)
    with pytest.raises(UnknownNameError):
        get_model_info("alexnet")


def test_bad_arguments_are_config_errors():
    with pytest.raises(ConfigError) as err:
        create_model("resnet18", width=0)
    assert err.value.field == "model.width"
    with pytest.raises(ConfigError):
        create_model("resnet18", num_classes=0)
    with pytest.raises(ConfigError):
        create_model("resnet18", in_channels=0)


# -- reference architectures -------------------------------------------------------------------


@pytest.mark.parametrize("name", list(REFERENCE_PARAMS))
def test_reference_parameter_counts(name):
    model = create_model(name, num_classes=10, in_channels=3, width=1.0)
    assert n_params(model) == REFERENCE_PARAMS[name]
    assert isinstance(model, ImageClassifier)
    assert model.arch == name


@pytest.mark.parametrize("family,name", list(SMALL.items()) + [("bottleneck", n) for n in BOTTLENECKS])
@pytest.mark.parametrize("in_channels", [1, 3])
def test_small_forward_and_head_api(family, name, in_channels):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, in_channels=in_channels, width=0.125).eval()
    x = torch.randn(2, in_channels, 32, 32)
    with torch.no_grad():
        out = model(x)
        feats = model.forward_features(x)
        assert out.shape == (2, 7)
        assert feats.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(feats), out)
    assert model.get_classifier() is model.classifier
    assert isinstance(model.get_classifier(), nn.Linear)
    assert model.get_classifier().in_features == model.num_features


def test_training_step_runs():
    model = create_model("preact_resnet18", num_classes=3, width=0.125)
    x, y = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 0])
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", list(SMALL.values()) + ["tv_resnet18"])
def test_reset_classifier_and_param_split(name):
    width = 1.0 if name.startswith("tv_") else 0.125
    model = create_model(name, num_classes=10, width=width).eval()
    x = torch.randn(2, 3, 32, 32)
    head_ids = {id(p) for p in model.head_parameters()}
    backbone = list(model.backbone_parameters())
    assert head_ids == {id(p) for p in model.classifier.parameters()}
    assert head_ids.isdisjoint(id(p) for p in backbone)
    assert len(head_ids) + len(backbone) == len(list(model.parameters()))
    assert model.backbone_modules() and all(m is not model.classifier for m in model.backbone_modules())

    model.reset_classifier(5)
    assert model.num_classes == 5
    with torch.no_grad():
        assert model(x).shape == (2, 5)
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(model.num_features, 3))
    model.reset_classifier(3, head=head)
    assert model.get_classifier() is head
    assert {id(p) for p in model.head_parameters()} == {id(p) for p in head.parameters()}
    with torch.no_grad():
        assert model(x).shape == (2, 3)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model(x).shape == (2, model.num_features)


def test_freezing_backbone_through_the_api():
    model = create_model("densenet_cifar", width=0.25)
    for p in model.backbone_parameters():
        p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in model.head_parameters()}


@pytest.mark.parametrize("name", ["resnet50", "preact_resnet18", "densenet121", "vgg16"])
def test_width_multiplier_is_monotonic(name):
    counts = [n_params(create_model(name, width=w)) for w in (0.125, 0.25, 0.5, 1.0)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert counts[-1] == REFERENCE_PARAMS[name]


def test_tiny_width_rounds_to_at_least_one_channel():
    model = create_model("vgg11", num_classes=2, width=0.001).eval()
    assert model.num_features == 1
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2)


# -- image sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SMALL.values()))
def test_min_image_size_is_real(name):
    info = get_model_info(name)
    model = create_model(name, num_classes=4, width=0.125)
    s = info.min_image_size
    model.train()  # training mode, batch 2: the stricter case for BatchNorm
    assert model(torch.randn(2, 3, s, s)).shape == (2, 4)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, s, s)).shape == (1, 4)
        if s > 1:
            with pytest.raises(RuntimeError):
                model(torch.randn(1, 3, s // 2, s // 2))


def test_min_image_sizes_per_family():
    assert get_model_info("vgg16").min_image_size == 32
    assert get_model_info("densenet121").min_image_size == 8
    assert get_model_info("tv_vgg11_bn").min_image_size == 32
    assert get_model_info("tv_densenet121").min_image_size == 32
    for name in list_models():
        info = get_model_info(name)
        assert info.min_image_size <= info.default_image_size


@pytest.mark.parametrize("name", ["vgg11", "densenet_cifar", "resnet18"])
def test_non_square_and_larger_inputs(name):
    model = create_model(name, num_classes=3, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 48)).shape == (1, 3)


# -- torchvision architectures -----------------------------------------------------------------


def test_tv_resnet18_at_32px():
    model = create_model("tv_resnet18", num_classes=10).eval()
    assert model.num_features == 512
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        out = model(x)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), out)
    assert out.shape == (2, 10)
    assert isinstance(model.body.fc, nn.Identity)


def test_tv_resnet18_load_body_state_dict():
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    model = create_model("tv_resnet18", num_classes=10).eval()
    result = model.load_body_state_dict(reference.state_dict())
    missing, unexpected = result  # unpacks like nn.Module.load_state_dict's result
    assert missing == []
    assert unexpected == []
    assert sorted(result.ignored_keys) == ["fc.bias", "fc.weight"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference.fc = nn.Identity()
        ref_feats = reference(x)
        torch.testing.assert_close(model.forward_features(x), ref_feats)
    # DataParallel prefix and a partial state_dict
    reference = torchvision.models.resnet18()
    partial = {"module." + k: v for k, v in reference.state_dict().items() if not k.startswith("layer4")}
    missing, unexpected = model.load_body_state_dict(partial)
    assert missing and all(k.startswith("layer4.") for k in missing)
    assert unexpected == []


def test_tv_load_rejects_wrong_architecture():
    model = create_model("tv_resnet18")
    with pytest.raises(CheckpointError):
        model.load_body_state_dict(torchvision.models.resnet34().state_dict() | {"conv1.weight": torch.zeros(8, 3, 7, 7)})


def test_tv_in_channels_adapts_stem_on_load():
    reference = torchvision.models.resnet18()
    model = create_model("tv_resnet18", num_classes=2, in_channels=1).eval()
    missing, unexpected = model.load_body_state_dict(reference.state_dict())
    assert missing == [] and unexpected == []
    torch.testing.assert_close(model.body.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 2)


def test_tv_densenet_old_style_keys_and_vgg_head():
    dn = create_model("tv_densenet121", num_classes=4)
    sd = torchvision.models.densenet121().state_dict()
    old = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2."): v for k, v in sd.items()}
    missing, unexpected = dn.load_body_state_dict(old)
    assert missing == [] and unexpected == []
    assert dn.load_body_state_dict(sd).ignored_keys == ["classifier.weight", "classifier.bias"]

    vgg = create_model("tv_vgg11_bn", num_classes=4).eval()
    assert vgg.num_features == 4096
    assert isinstance(vgg.body.classifier[6], nn.Identity)
    assert isinstance(vgg.body.classifier[3], nn.Linear)  # the MLP stays in the body
    result = vgg.load_body_state_dict(torchvision.models.vgg11_bn().state_dict())
    assert list(result) == [[], []]
    assert sorted(result.ignored_keys) == ["classifier.6.bias", "classifier.6.weight"]
    with torch.no_grad():
        assert vgg(torch.randn(1, 3, 32, 32)).shape == (1, 4)


def test_tv_refuses_width():
    with pytest.raises(ConfigError) as err:
        create_model("tv_resnet18", width=0.5)
    assert err.value.field == "model.width"


@pytest.mark.parametrize("name", TV_MODELS)
def test_tv_models_build_with_head_api(name):
    model = create_model(name, num_classes=3, in_channels=1)
    assert model.classifier.out_features == 3
    assert model.classifier.in_features == model.num_features
    assert isinstance(model.get_classifier(), nn.Linear)
