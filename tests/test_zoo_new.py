"""Inception-v3, Inception-ResNet-v2, ResNeXt-101, Wide ResNet-101-2 and the plain nets.

State-dict keys and shapes against hand-typed facts of torchvision's and timm's layouts;
parameter counts against arithmetic over the layer tables and the published figures; the plain
nets against the definition "the ResNet's layers without a single shortcut". Forward and
backward passes of every one of them run in tests/test_models.py.
"""

import functools
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from convnet.errors import ConvnetError
from convnet.models import create_model, get_card

# A few (key, shape) pairs each, and the number of state-dict keys, of torchvision 0.29's
# inception_v3 / resnext101_32x8d / resnext101_64x4d / wide_resnet101_2 and timm 1.0's
# inception_resnet_v2 (shapes read off their layer definitions).
KEYS = {
    "inception_v3": (
        580,
        {
            "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
            "Conv2d_4a_3x3.bn.running_var": (192,),
            "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
            "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
            "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
            "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
            "AuxLogits.conv1.conv.weight": (768, 128, 5, 5),
            "AuxLogits.fc.weight": (1000, 768),
            "fc.weight": (1000, 2048),
        },
    ),
    "resnext101_32x8d": (
        626,
        {
            "layer1.0.conv1.weight": (256, 64, 1, 1),  # 32 groups x 8 channels
            "layer1.0.conv2.weight": (256, 8, 3, 3),  # grouped: 8 input channels per filter
            "layer3.22.conv2.weight": (1024, 32, 3, 3),
            "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
            "fc.weight": (1000, 2048),
        },
    ),
    "resnext101_64x4d": (
        626,
        {
            "layer1.0.conv2.weight": (256, 4, 3, 3),  # 64 groups x 4 channels
            "layer4.2.conv2.weight": (2048, 32, 3, 3),
            "layer4.2.bn3.num_batches_tracked": (),
        },
    ),
    "wide_resnet101_2": (
        626,
        {
            "layer1.0.conv1.weight": (128, 64, 1, 1),  # twice ResNet-101's inner width
            "layer4.2.conv2.weight": (1024, 1024, 3, 3),
            "layer4.2.conv3.weight": (2048, 1024, 1, 1),
        },
    ),
    "inception_resnet_v2": (
        1306,
        {
            "conv2d_1a.conv.weight": (32, 3, 3, 3),
            "mixed_5b.branch3.1.conv.weight": (64, 192, 1, 1),
            "repeat.9.conv2d.bias": (320,),
            "repeat_1.19.branch1.1.conv.weight": (160, 128, 1, 7),
            "mixed_7a.branch2.2.conv.weight": (320, 288, 3, 3),
            "repeat_2.8.conv2d.weight": (2080, 448, 1, 1),
            "block8.branch1.2.conv.weight": (256, 224, 3, 1),
            "conv2d_7b.bn.running_mean": (1536,),
            "classif.weight": (1000, 1536),
        },
    ),
}


def _meta(name: str, **options) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **options)


@functools.cache
def _shared(name: str) -> nn.Module:
    """One meta-device model per name for the tests that only read it (building is not free)."""
    return _meta(name)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(KEYS))
def test_state_dict_keys_and_shapes(name):
    n_keys, table = KEYS[name]
    state = _shared(name).state_dict()
    assert len(state) == n_keys
    for key, shape in table.items():
        assert tuple(state[key].shape) == shape, key
    card = get_card(name)
    assert card.torchvision_keys == (name != "inception_resnet_v2")
    assert card.timm_keys == (name == "inception_resnet_v2")


def _cb(cin: int, cout: int, kh: int, kw: int | None = None) -> int:
    """Conv (no bias) + batch norm: kh * kw * cin * cout weights, BN's gamma and beta."""
    return cin * cout * kh * (kh if kw is None else kw) + 2 * cout


def _bottleneck_resnet(layers, groups=1, width_per_group=64, classes=1000) -> int:
    """Parameters of a torchvision bottleneck ResNet/ResNeXt from its layer table."""
    total, cin = _cb(3, 64, 7), 64
    for planes, blocks in zip((64, 128, 256, 512), layers):
        width, cout = planes * width_per_group // 64 * groups, planes * 4
        for b in range(blocks):
            total += _cb(cin, width, 1) + _cb(width // groups, width, 3) + _cb(width, cout, 1)
            if b == 0:  # every stage's first block changes the shape: a projection shortcut
                total += _cb(cin, cout, 1)
            cin = cout
    return total + 2048 * classes + classes


def test_bottleneck_counts_from_the_layer_tables():
    assert _bottleneck_resnet([3, 4, 6, 3]) == 25_557_032  # the formula reproduces ResNet-50
    # torchvision's published counts
    cases = {
        "resnext101_32x8d": (_bottleneck_resnet([3, 4, 23, 3], 32, 8), 88_791_336),
        "resnext101_64x4d": (_bottleneck_resnet([3, 4, 23, 3], 64, 4), 83_455_272),
        "wide_resnet101_2": (_bottleneck_resnet([3, 4, 23, 3], 1, 128), 126_886_696),
    }
    for name, (arith, published) in cases.items():
        assert arith == published == _count(_shared(name)) == get_card(name).params, name


def test_inception_resnet_v2_count_from_the_paper_blocks():
    stem = _cb(3, 32, 3) + _cb(32, 32, 3) + _cb(32, 64, 3) + _cb(64, 80, 1) + _cb(80, 192, 3)
    m5b = _cb(192, 96, 1) + _cb(192, 48, 1) + _cb(48, 64, 5) + _cb(192, 64, 1)
    m5b += _cb(64, 96, 3) + _cb(96, 96, 3) + _cb(192, 64, 1)
    b35 = 3 * _cb(320, 32, 1) + _cb(32, 32, 3) + _cb(32, 48, 3) + _cb(48, 64, 3)
    b35 += 128 * 320 + 320  # the 1x1 projection back to 320 has a bias, no BN
    m6a = _cb(320, 384, 3) + _cb(320, 256, 1) + _cb(256, 256, 3) + _cb(256, 384, 3)
    b17 = _cb(1088, 192, 1) + _cb(1088, 128, 1) + _cb(128, 160, 1, 7) + _cb(160, 192, 7, 1)
    b17 += 384 * 1088 + 1088
    m7a = 3 * _cb(1088, 256, 1) + _cb(256, 384, 3) + 2 * _cb(256, 288, 3) + _cb(288, 320, 3)
    b8 = 2 * _cb(2080, 192, 1) + _cb(192, 224, 1, 3) + _cb(224, 256, 3, 1) + 448 * 2080 + 2080
    tail = _cb(2080, 1536, 1) + 1536 * 1000 + 1000
    total = stem + m5b + 10 * b35 + m6a + 20 * b17 + m7a + 10 * b8 + tail
    assert total == 55_843_464 == _count(_shared("inception_resnet_v2"))  # timm's figure


def test_inception_v3_count_and_aux_head():
    aux = _cb(768, 128, 1) + _cb(128, 768, 5) + 768 * 1000 + 1000
    # torchvision: 27,161,264 with the aux head; its quantized file (no aux head) 23,834,568
    assert _count(_shared("inception_v3")) == 27_161_264
    assert _count(_meta("inception_v3", aux_logits=False)) == 23_834_568 == 27_161_264 - aux


def test_inception_v3_without_aux_drops_a_files_aux_keys():
    full = _shared("inception_v3").state_dict()
    model = _meta("inception_v3", aux_logits=False)
    assert set(model.adapt_state_dict(full)) == set(model.state_dict())
    assert model.head_names == ("fc",)
    assert _shared("inception_v3").head_names == ("fc", "AuxLogits.fc")


def test_inception_v3_input_transform_maps_pixels_to_minus_one_one():
    from convnet.models.inception_v3 import imagenet_to_tf_range

    p = torch.rand(2, 3, 4, 4)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    torch.testing.assert_close(imagenet_to_tf_range((p - mean) / std), 2 * p - 1)


def test_inception_v3_aux_head_is_torchvisions_at_17x17():
    from convnet.models.inception_v3 import InceptionAux

    torch.manual_seed(0)
    aux = InceptionAux(8, 3).eval()
    x = torch.randn(2, 8, 17, 17)
    # torchvision's pipeline: 5x5/3 average pool (17 -> 5), 1x1 conv, 5x5 conv (-> 1x1), FC
    y = aux.conv1(aux.conv0(F.avg_pool2d(x, 5, stride=3)))
    assert y.shape[-2:] == (1, 1)
    torch.testing.assert_close(aux(x), aux.fc(y.flatten(1)))
    assert aux(torch.randn(2, 8, 3, 3)).shape == (2, 3)  # smaller grids: adaptive 5x5 pool


def _out_shapes(name: str, paths: list[str]) -> list[tuple[int, ...]]:
    model = _shared(name).eval()
    modules, found = dict(model.named_modules()), {}
    hooks = [
        modules[p].register_forward_hook(lambda m, i, o, p=p: found.__setitem__(p, o.shape[1:]))
        for p in paths
    ]
    with torch.device("meta"):
        model(torch.empty(1, *get_card(name).input_size))
    for h in hooks:
        h.remove()
    return [tuple(found[p]) for p in paths]


def test_inception_grids():
    # Inception-v3 (Szegedy et al. 2015, table 1): 35x35x288, 17x17x768, 8x8x2048
    assert _out_shapes("inception_v3", ["Mixed_5d", "Mixed_6e", "Mixed_7c"]) == [
        (288, 35, 35), (768, 17, 17), (2048, 8, 8),
    ]  # fmt: skip
    # Inception-ResNet-v2 (TF-slim's / timm's widths): 35x35x320, 17x17x1088, 8x8x2080 -> 1536
    paths = ["repeat", "repeat_1", "repeat_2", "conv2d_7b"]
    assert _out_shapes("inception_resnet_v2", paths) == [
        (320, 35, 35), (1088, 17, 17), (2080, 8, 8), (1536, 8, 8),
    ]  # fmt: skip


def test_inception_resnet_blocks_add_a_scaled_residual():
    from convnet.models.inception_resnet_v2 import Block8, Block35

    model = _shared("inception_resnet_v2")
    assert {b.scale for b in model.repeat} == {0.17}
    assert {b.scale for b in model.repeat_1} == {0.10}
    assert {b.scale for b in model.repeat_2} == {0.20}
    assert model.block8.relu is None  # the last block feeds the 1x1 conv without a ReLU
    torch.manual_seed(0)
    for block, x in ((Block35(), torch.randn(1, 320, 5, 5)), (Block8(relu=False), None)):
        if x is None:
            x = torch.randn(1, 2080, 3, 3)
        block.eval()
        with torch.no_grad():
            y = block(x)
            block.conv2d.weight.zero_(), block.conv2d.bias.zero_()
            base = block(x)
        # with the projection zeroed only the shortcut is left: relu(x), or x without the ReLU
        torch.testing.assert_close(base, x.relu() if block.relu is not None else x)
        assert not torch.allclose(y, base)


def test_cards_cite_papers_and_state_accuracy_with_a_source():
    inception_paper = "Inception-v4, Inception-ResNet and the Impact of Residual Connections"
    for name in ("inception_v4", "inception_resnet_v2"):
        assert get_card(name).paper.startswith(inception_paper) and get_card(name).year == 2016
    names = [*KEYS, "inception_v4", "plain18", "plain34"]
    for name in names:
        card = get_card(name)
        assert card.top1 is not None and card.accuracy_source, name
        # the accuracies are 100 - the error percentages the card's result quotes
        errors = re.search(r"error ([\d.]+)%(?: / ([\d.]+)%)?", card.result)
        assert errors, name
        assert 100 - card.top1 == pytest.approx(float(errors[1]), abs=0.05), name
        if card.top5 is not None:
            assert 100 - card.top5 == pytest.approx(float(errors[2]), abs=0.05), name


# ---- plain nets ---------------------------------------------------------------------------


def _cifar_params(depth: int, classes: int = 10) -> int:
    """6n + 2 layers: 3x3 conv 16, 2n convs at each of 16, 32, 64 filters, BN after each, FC."""
    n = (depth - 2) // 6
    total, cin = _cb(3, 16, 3), 16
    for width in (16, 32, 64):
        for _ in range(2 * n):
            total, cin = total + _cb(cin, width, 3), width
    return total + 64 * classes + classes


def test_plain_counts():
    for depth in (20, 32, 44, 56, 110):
        name = f"plain{depth}"
        # the paper's option A shortcuts have no parameters: plain-N has ResNet-N's count
        assert _count(_meta(name)) == _cifar_params(depth) == get_card(f"resnet{depth}").params
        assert get_card(name).params == _cifar_params(depth)
    # ImageNet: ResNet-18/34 (torchvision) less the three 1x1 projections and their BN
    projections = _cb(64, 128, 1) + _cb(128, 256, 1) + _cb(256, 512, 1)
    assert projections == 173_824
    assert _count(_meta("plain18")) == 11_689_512 - projections == get_card("plain18").params
    assert _count(_meta("plain34")) == 21_797_672 - projections == get_card("plain34").params


def test_plain_keys_are_the_resnets_without_shortcuts():
    assert list(_meta("plain20").state_dict()) == list(_meta("resnet20").state_dict())
    resnet = [k for k in _meta("resnet34").state_dict() if ".downsample." not in k]
    assert list(_meta("plain34").state_dict()) == resnet


def _blocks(model: nn.Module) -> list[nn.Module]:
    stages = [getattr(model, f"layer{i}") for i in range(1, 5) if hasattr(model, f"layer{i}")]
    return [block for stage in stages for block in stage]


def _zero_block_convs(model: nn.Module) -> None:
    with torch.no_grad():
        for block in _blocks(model):
            for name, m in block.named_modules():
                if isinstance(m, nn.Conv2d) and not name.startswith(("shortcut", "downsample")):
                    m.weight.zero_()


@pytest.mark.parametrize(
    "plain, residual, side", [("plain20", "resnet20", 8), ("plain18", "resnet18", 32)]
)
def test_plain_nets_have_no_shortcut_anywhere(plain, residual, side):
    """Zero every conv inside every block: the input can then reach the output only through a
    shortcut. A plain net's output stops depending on its input; its ResNet twin's does not."""
    torch.manual_seed(0)
    x1, x2 = torch.randn(2, 1, 3, side, side)
    for name, depends in ((plain, False), (residual, True)):
        model = create_model(name, num_classes=5).eval()
        blocks = _blocks(model)
        inputs = []
        hooks = [b.register_forward_pre_hook(lambda m, a, s=inputs: s.append(a[0])) for b in blocks]
        with torch.no_grad():
            model(x1)
        for h in hooks:
            h.remove()
        _zero_block_convs(model)
        with torch.no_grad():
            # block by block: perturb the block's input; the output moves only via a shortcut
            for block, inp in zip(blocks, inputs):
                moved = not torch.allclose(block(inp), block(inp + torch.randn_like(inp)))
                assert moved == depends, (name, block)
            # end to end: the stem's output reaches the head only through shortcuts
            assert (not torch.allclose(model(x1), model(x2))) == depends, name


def test_plain_options_that_need_shortcuts_are_refused():
    with pytest.raises(ConvnetError, match="stochastic_depth"):
        _meta("plain20", stochastic_depth=0.5)
    with pytest.raises(ConvnetError, match="stochastic_depth"):
        _meta("plain18", stochastic_depth=0.5)
    with pytest.raises(ConvnetError, match="zero_init_residual"):
        _meta("plain34", zero_init_residual=True)
    with pytest.raises(ConvnetError, match="shortcut='C'"):
        _meta("resnet18", shortcut="C")
    with pytest.raises(ConvnetError, match="shortcut='C'"):
        _meta("resnet20", shortcut="C")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # one intra-op thread per test process (as tests/test_models.py): two processes share two
    # cores under -n 2, and an oversubscribed OpenMP pool spins instead of computing
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
