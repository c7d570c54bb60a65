"""Every zoo model: exact parameter count (the papers' / torchvision's numbers, typed in here as
the independent check), the summary at the canonical input, and a forward + backward pass."""

import pytest
import torch
import torch.nn.functional as F

import convnet
from convnet.analysis.trace import SkipInit  # meta builds skip initializers, as summaries do
from convnet.models import AuxOutputs, create_model, get_card, list_models

# Exact parameter counts at the default head. From the issue (torchvision's and timm's published
# architectures, the papers' tables); the rest worked out by hand from the layer tables:
#   lenet5_1998: C1 156 + S2 12 + C3 (60*25 + 16) 1,516 + S4 32 + C5 48,120 + F6 10,164 + 850
#   googlenet_paper: stem 124,416 + inceptions 5,849,136 + FC 1,025,000 + aux 3,188,840 + 3,190,888
#   preact_resnet20: conv 432 + stages 14,016 + 51,552 + 205,504 + BN 128 + FC 650
#   preact_resnet164: 432 + 81,952 + 326,272 + 1,291,520 + 512 + 2,570
#   allconv: 2,688 + 2*83,040 + 166,080 + 3*331,968 + 37,056 + 1,930
#   highway (depth 10, width 50): 784*50 + 50 + 9 * 2 * (50*50 + 50) + 50*10 + 10
PARAMS = {
    "alexnet": 61_100_840,
    "alexnet_original": 60_965_224,
    "allconv": 1_369_738,
    "densenet121": 7_978_856,
    "densenet161": 28_681_000,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "fractalnet_cifar": 33_724_618,
    "googlenet": 13_004_888,
    "googlenet_paper": 13_378_280,
    "highway": 85_660,
    "inception_resnet_v2": 55_843_464,
    "inception_v3": 27_161_264,
    "inception_v4": 42_679_816,
    "lenet5": 61_706,
    "lenet5_1998": 60_850,
    # NASNet-A: Keras' NASNetMobile / NASNetLarge trainable counts (the latter is timm's
    # nasnetalarge); CIFAR 6 @ 768 from the cell formula in tests/test_nasnet.py
    "nasnet_a_cifar": 3_346_538,
    "nasnet_a_large": 88_753_150,
    "nasnet_a_mobile": 5_289_978,
    "nin_cifar": 966_986,
    # plain nets: the ResNets' layers without shortcuts (tests/test_zoo_new.py: the arithmetic)
    "plain18": 11_515_688,
    "plain34": 21_623_848,
    "plain20": 269_722,
    "plain32": 464_154,
    "plain44": 658_586,
    "plain56": 853_018,
    "plain110": 1_727_962,
    "preact_resnet20": 272_282,
    "preact_resnet56": 855_578,
    "preact_resnet110": 1_730_522,
    "preact_resnet164": 1_703_258,
    "preact_resnet1001": 10_327_706,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "resnet1202": 19_421_274,
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "seresnet50": 28_088_024,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "wrn28_10": 36_479_194,
    "zfnet": 62_357_608,
}

# Smallest convenient input side per model for the CPU forward/backward (fast, still valid).
SIDE = {
    "lenet5": 32,
    "lenet5_1998": 32,  # C5's 5x5 conv must see exactly 5x5
    "highway": 28,  # fully connected on flattened 28x28
    "fractalnet_cifar": 32,  # five 2x2 pools
    "alexnet_original": 67,  # unpadded 11x11/4 conv, then three 3x3/2 pools
    "googlenet_paper": 96,  # the aux heads' 5x5/3 pool needs a 5x5 map at inception4a
    "inception_v4": 75,  # unpadded stem convs
    "inception_v3": 75,
    "inception_resnet_v2": 75,
}

# 101-layer bottleneck nets of 83-127M parameters: building and differentiating one costs ~3 s of
# CPU at any input size, and their blocks are resnext50_32x4d's and wide_resnet50_2's, which run
# here for real. Their pass runs on the meta device: the wiring, the output shape and a gradient
# for every parameter, without the arithmetic.
META_PASS = {"resnext101_32x8d", "resnext101_64x4d", "wide_resnet101_2"}
# VGG-13/16/19 and VGG-11-BN (133-144M parameters, 4-5 s each) are VGG-11's blocks and head,
# which run here for real, with batch norm's conv-BN-ReLU as every ResNet runs it; their pass
# runs on the meta device.
META_PASS |= {f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")} - {"vgg11"}

# NASNet-A Large (88.8M) is nasnet_a_mobile's builder and cells with other numbers; Mobile makes
# the pass here for real, Large's wiring is checked against timm's in tests/test_nasnet.py, and
# a meta-device pass through its ~1,000 batch-norm calls would cost ~10 s.
NO_PASS = {"nasnet_a_large"}

# Multiply-adds at the canonical input, in GMACs to 3 decimals: torchvision's published "_ops"
# figures for its weights (inception_v3 at 299x299, the others at 224x224).
GMACS = {
    "inception_v3": 5.713,
    "resnext101_32x8d": 16.414,
    "resnext101_64x4d": 15.460,
    "wide_resnet101_2": 22.753,
}

# Multiply-adds a paper reports, rounded there, so checked to within 1%: NASNet-A Mobile at
# 224x224 and Large at 331x331 (Zoph et al. 2018, tables 2 and 3).
PAPER_MACS = {"nasnet_a_mobile": 564e6, "nasnet_a_large": 23.8e9}

# Each auxiliary loss's weight where it is not GoogLeNet's 0.3 (Inception-v3: TF-slim's 0.4).
AUX_WEIGHT = {"inception_v3": 0.4}


# Global drop-path trains one column per batch; the other columns get no gradient that step.
MAY_SKIP_PARAMS = {"fractalnet_cifar"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # one intra-op thread per test process: CI runs two processes on two cores, and an
    # oversubscribed OpenMP pool spins instead of computing
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _side(name: str) -> int:
    if name in SIDE:
        return SIDE[name]
    return 16 if get_card(name).input_size[1] <= 32 else 64


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_model_has_a_count_here():
    assert set(list_models()) == set(PARAMS)


@pytest.mark.parametrize("name", list_models())
def test_params_and_summary(name):
    card = get_card(name)
    with torch.device("meta"), SkipInit():
        model = create_model(name)
    assert _count(model) == PARAMS[name] == card.params
    assert model.default_input_size == card.input_size
    s = convnet.summary(model, input_size=card.input_size, training_memory=False)
    assert s.totals["params"] == PARAMS[name]
    assert s.totals["macs"] > 0
    if name in GMACS:
        assert round(s.totals["macs"] / 1e9, 3) == GMACS[name]
    if name in PAPER_MACS:
        assert abs(s.totals["macs"] / PAPER_MACS[name] - 1) < 0.01
    assert s.rows[-1].output[0] == card.num_classes


@pytest.mark.parametrize("name", [n for n in list_models() if n not in META_PASS | NO_PASS])
def test_forward_backward(name):
    torch.manual_seed(0)
    card = get_card(name)
    model = create_model(name, num_classes=7)
    side = _side(name)
    x = torch.randn(2, card.input_size[0], side, side)
    target = torch.tensor([1, 5])
    model.train()
    out = model(x)
    if isinstance(out, AuxOutputs):
        assert out.logits.shape == (2, 7) and all(a.shape == (2, 7) for a in out.aux)
        weight = AUX_WEIGHT.get(name, 0.3)
        assert out.aux_weight == weight
        loss = out.loss(F.cross_entropy, target)
        expected = F.cross_entropy(out.logits, target) + weight * sum(
            F.cross_entropy(a, target) for a in out.aux
        )
        torch.testing.assert_close(loss, expected)
    else:
        assert out.shape == (2, 7)
        loss = F.cross_entropy(out, target)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    if name in MAY_SKIP_PARAMS:
        grads = [g for g in grads if g is not None]
    # a sum is finite only when every term is (a NaN or an infinity carries into it): one pass
    assert all(g is not None and torch.isfinite(g.sum()) for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        y = model(x[:1])
    assert isinstance(y, torch.Tensor) and y.shape == (1, 7)


@pytest.mark.parametrize("name", sorted(META_PASS))
def test_forward_backward_on_meta(name):
    with torch.device("meta"), SkipInit():
        model = create_model(name, num_classes=7).train()
    with torch.device("meta"):
        out = model(torch.randn(2, 3, 32, 32))
        F.cross_entropy(out, torch.tensor([1, 5])).backward()
    assert out.shape == (2, 7)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_in_chans_changes_only_the_first_layer():
    with torch.device("meta"), SkipInit():
        rgb, gray = create_model("resnet18"), create_model("resnet18", in_chans=1)
    assert _count(rgb) - _count(gray) == 2 * 64 * 7 * 7
    assert gray.default_input_size == (1, 224, 224)


def test_googlenet_without_aux_heads():
    with torch.device("meta"), SkipInit():
        assert _count(create_model("googlenet", aux_logits=False)) == 6_624_904
        assert _count(create_model("googlenet_paper", aux_logits=False)) == 6_998_552


def test_googlenet_paper_uses_true_5x5_and_torchvision_3x3():
    with torch.device("meta"), SkipInit():
        tv, paper = create_model("googlenet"), create_model("googlenet_paper")
    assert tv.inception3a.branch3[1].conv.kernel_size == (3, 3)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)


def test_cifar_resnet_option_b_counts():
    with torch.device("meta"), SkipInit():
        for depth, params in ((20, 272_474), (56, 855_770), (110, 1_730_714)):
            assert _count(create_model(f"resnet{depth}", shortcut="B")) == params


def test_cifar_option_a_shortcut_is_subsample_plus_zeros():
    model = create_model("resnet20").eval()
    block = model.layer2[0]
    x = torch.randn(1, 16, 8, 8)
    y = block.shortcut(x)
    assert y.shape == (1, 32, 4, 4)
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert (y[:, 16:] == 0).all()


def test_paper_stride_on_first_1x1_keeps_the_count():
    with torch.device("meta"), SkipInit():
        m = create_model("resnet50", stride_in_1x1=True)
    assert _count(m) == PARAMS["resnet50"]
    assert m.layer2[0].conv1.stride == (2, 2) and m.layer2[0].conv2.stride == (1, 1)
    with torch.device("meta"), SkipInit():
        tv = create_model("resnet50")
    assert tv.layer2[0].conv1.stride == (1, 1) and tv.layer2[0].conv2.stride == (2, 2)


def test_stochastic_depth_linear_decay_and_full_depth_at_test():
    model = create_model("resnet56", stochastic_depth=0.5)
    drops = [
        b.drop_path.p_drop for stage in (model.layer1, model.layer2, model.layer3) for b in stage
    ]
    L = len(drops)
    assert L == 27
    # p_l = 1 - l/L * (1 - p_L): the last block survives with probability 0.5
    for i, p in enumerate(drops, start=1):
        assert abs((1 - p) - (1 - i / L * 0.5)) < 1e-12
    plain = create_model("resnet56")
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x), plain(x))  # eval: every block, no rescaling


def test_stochastic_depth_drops_whole_branches_in_training():
    from convnet.layers import DropPath

    torch.manual_seed(0)
    dp = DropPath(0.5).train()
    x = torch.ones(4, 3, 2, 2)
    outs = {float(dp(x).sum()) for _ in range(40)}
    assert outs == {0.0, 2.0 * x.numel()}  # the whole batch kept (scaled by 1/0.5) or dropped


def test_fractalnet_drop_path_and_deterministic_eval():
    torch.manual_seed(1)
    model = create_model("fractalnet_cifar", channels=(4, 4, 4, 4, 4))
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    outs = [model(x) for _ in range(6)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])  # different paths per batch


def test_cli_models_table(cli):
    code, out, err = cli("models", "squeezenet*", "--format", "json")
    assert code == 0, err
    import json

    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["squeezenet1_0", "squeezenet1_1"]
    assert rows[0]["params"] == 1_248_424
    # SqueezeNet 1.1 was designed for 2.4x less computation than 1.0 (at 224x224)
    assert 2.2 < rows[0]["macs"] / rows[1]["macs"] < 2.5
    code, out, _ = cli("models", "lenet*", "--no-macs")
    assert code == 0 and "lenet5_1998" in out and "60,850" in out
    code, _, err = cli("models", "nosuchnet")
    assert code == 2 and "no model matches" in err


def test_densenet_memory_efficient_gives_the_same_gradients():
    torch.manual_seed(0)
    kw = dict(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=5)
    from convnet.models.densenet import DenseNet

    a, b = DenseNet(**kw), DenseNet(memory_efficient=True, **kw)
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 32, 32)
    for m in (a, b):
        F.cross_entropy(m(x), torch.tensor([0, 3])).backward()
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(pa.grad, pb.grad, msg=name)


def test_highway_depth_option_count():
    with torch.device("meta"), SkipInit():
        m = create_model("highway", depth=100)
    # plain 784 -> 50 layer, 99 highway layers of two 50x50 maps (H and T), classifier
    assert _count(m) == 784 * 50 + 50 + 99 * 2 * (50 * 50 + 50) + 50 * 10 + 10


def test_zfnet_wide_variant_count():
    with torch.device("meta"), SkipInit():
        m = create_model("zfnet", filters=(512, 1024, 512))
    convs = (7 * 7 * 3 * 96 + 96) + (5 * 5 * 96 * 256 + 256) + (9 * 256 * 512 + 512)
    convs += (9 * 512 * 1024 + 1024) + (9 * 1024 * 512 + 512)
    fcs = (6 * 6 * 512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 1000 + 1000)
    assert _count(m) == convs + fcs == 107_627_624


def test_imagenet_resnet_stochastic_depth_schedule():
    with torch.device("meta"), SkipInit():
        m = create_model("resnet50", stochastic_depth=0.5)
    blocks = [b for stage in (m.layer1, m.layer2, m.layer3, m.layer4) for b in stage]
    assert len(blocks) == 16
    assert abs(blocks[0].drop_path.p_drop - 0.5 / 16) < 1e-12
    assert abs(blocks[-1].drop_path.p_drop - 0.5) < 1e-12


def _shapes(name: str, paths: list[str]) -> list[tuple[int, ...]]:
    """Output (C, H, W) of the named submodules at the model's canonical input, on meta."""
    with torch.device("meta"), SkipInit():
        model = create_model(name).eval()
    found: dict[str, tuple[int, ...]] = {}
    modules = dict(model.named_modules())
    for p in paths:
        modules[p].register_forward_hook(
            lambda m, i, o, p=p: found.__setitem__(p, tuple(o.shape[1:]))
        )
    with torch.device("meta"):
        model(torch.empty(1, *get_card(name).input_size))
    return [found[p] for p in paths]


def test_alexnet_original_follows_table_3_1():
    # seed 003, table 3.1: conv1 55x55x96, pool 27x27x96, LRN, conv2 27x27x256, pool 13x13x256,
    # LRN, conv3 13x13x384, conv4 13x13x384, conv5 13x13x256, pool 6x6x256, FC 4096, 4096
    paths = [f"features.{i}" for i in (0, 2, 3, 4, 6, 7, 8, 10, 12, 14)] + [
        "classifier.0",
        "classifier.3",
    ]
    assert _shapes("alexnet_original", paths) == [
        (96, 55, 55), (96, 27, 27), (96, 27, 27), (256, 27, 27), (256, 13, 13), (256, 13, 13),
        (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6), (4096,), (4096,),
    ]  # fmt: skip
    with torch.device("meta"), SkipInit():
        m = create_model("alexnet_original")
    assert [m.features[i].groups for i in (0, 4, 8, 10, 12)] == [1, 2, 1, 2, 2]
    lrn = m.features[3]  # the paper's alpha = 1e-4 is torch's alpha / n
    assert (lrn.size, lrn.alpha / lrn.size, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)


def test_zfnet_layer_sizes_from_the_paper():
    # Zeiler & Fergus figure 3: 110x110x96, 55x55x96, 26x26x256, 13x13x256, 13x13x384,
    # 13x13x384, 13x13x256, 6x6x256
    paths = [f"features.{i}" for i in (0, 2, 4, 6, 8, 10, 12, 14)]
    assert _shapes("zfnet", paths) == [
        (96, 110, 110), (96, 55, 55), (256, 26, 26), (256, 13, 13),
        (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),
    ]  # fmt: skip


def test_googlenet_table_1_sizes():
    # Szegedy et al. table 1: 3a 28x28x256, 3b 28x28x480, 4a 14x14x512, 4e 14x14x832,
    # 5b 7x7x1024
    for name in ("googlenet", "googlenet_paper"):
        paths = ["inception3a", "inception3b", "inception4a", "inception4e", "inception5b"]
        assert _shapes(name, paths) == [
            (256, 28, 28), (480, 28, 28), (512, 14, 14), (832, 14, 14), (1024, 7, 7),
        ]  # fmt: skip


def test_inception_v4_grid_sizes():
    # Szegedy et al. 2016 figure 9: 35x35x384 after the stem, 17x17x1024, 8x8x1536
    assert _shapes("inception_v4", ["features.5", "features.10", "features.21"]) == [
        (384, 35, 35), (1024, 17, 17), (1536, 8, 8),
    ]  # fmt: skip


def test_resnet50_stage_sizes():
    # He et al. table 1: conv2_x 56x56x256, conv3_x 28x28x512, conv4_x 14x14x1024, conv5_x 7x7x2048
    assert _shapes("resnet50", ["layer1", "layer2", "layer3", "layer4"]) == [
        (256, 56, 56), (512, 28, 28), (1024, 14, 14), (2048, 7, 7),
    ]  # fmt: skip
