"""Training-memory estimate: byte counts against hand formulas, linearity, max_batch, bf16, and
one real training step measured through the c10 allocator's own records (torch.profiler)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.analysis.memory import estimate_training_memory, max_batch
from convnet.errors import ConvnetError, ShapeError

A, H, K = 20, 30, 5  # MLP: inputs, hidden units, classes


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(A, H), nn.ReLU(), nn.Linear(H, K))


def convnet(k: int = 10) -> nn.Module:
    # conv 3->8 (3x3, pad 1), in-place ReLU, 2x2 max pool, FC to k classes; input 3x16x16
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * 8 * 8, k),
    )


P_MLP = 4 * (A * H + H + H * K + K)  # float32 weights and biases


@pytest.mark.parametrize(
    ("optimizer", "state"),
    [("sgd", 0), ("momentum", P_MLP), ("adam", 2 * P_MLP + 4 * 4)],  # Adam: m, v, 4 step scalars
)
def test_mlp_matches_hand_count(optimizer: str, state: int) -> None:
    b = 4
    est = estimate_training_memory(mlp(), (A,), b, optimizer=optimizer)
    assert est.params_bytes == P_MLP
    assert est.grads_bytes == P_MLP
    assert est.optimizer_bytes == state
    assert est.batch_bytes == 4 * b * A + 8 * b  # float inputs, int64 labels
    # Alive after forward+loss: ReLU output (saved by ReLU and the 2nd Linear), the logits the loop
    # holds, log_softmax's saved output, the loss and nll_loss's total_weight scalar.
    assert est.activations_bytes == 4 * (b * H + 2 * b * K) + 4 + 4
    at_peak = est.breakdown
    assert est.peak_bytes == sum(at_peak.values())
    assert at_peak["params"] == P_MLP and at_peak.get("optimizer", 0) == state
    assert est.peak_bytes >= est.persistent_bytes + est.activations_bytes - 4


def test_convnet_matches_hand_count() -> None:
    for b in (2, 4):
        est = estimate_training_memory(convnet(), (3, 16, 16), b, optimizer="momentum")
        p = 4 * (8 * 3 * 9 + 8 + 512 * 10 + 10)
        assert (est.params_bytes, est.grads_bytes, est.optimizer_bytes) == (p, p, p)
        conv = 8 * 16 * 16 * 4  # conv output, rectified in place: one storage
        pool = 8 * 8 * 8 * (4 + 8)  # pooled values and their int64 argmax switches
        assert est.activations_bytes == b * (conv + pool + 2 * 10 * 4) + 8


def test_bfloat16_halves_the_float_activations() -> None:
    b, hw = 4, 16 * 16
    fp32 = estimate_training_memory(convnet(), (3, 16, 16), b)
    bf16 = estimate_training_memory(convnet(), (3, 16, 16), b, dtype=torch.bfloat16)
    # master weights, gradients and momentum stay float32
    assert (bf16.params_bytes, bf16.grads_bytes, bf16.optimizer_bytes) == (
        fp32.params_bytes,
        fp32.grads_bytes,
        fp32.optimizer_bytes,
    )
    per_image_fp32 = 4 * (8 * hw + 8 * hw // 4) + 8 * (8 * hw // 4) + 4 * 10 + 4 * 10
    # bf16: conv and pool maps at 2 bytes, switches still int64, the bf16 copy of the input conv
    # saves, bf16 logits and float32 log-probabilities; plus the bf16 weight copies autocast made.
    per_image_bf16 = 2 * (8 * hw + 8 * hw // 4) + 8 * (8 * hw // 4) + 2 * 3 * hw + 2 * 10 + 4 * 10
    weight_copies = 2 * (8 * 3 * 9) + 2 * (512 * 10)
    assert fp32.activations_bytes == b * per_image_fp32 + 8
    assert bf16.activations_bytes == b * per_image_bf16 + weight_copies + 8
    maps_fp32, maps_bf16 = 4 * (8 * hw + 8 * hw // 4), 2 * (8 * hw + 8 * hw // 4)
    assert maps_bf16 * 2 == maps_fp32


def test_linear_in_batch() -> None:
    for model, size in ((mlp(), (A,)), (convnet(), (3, 16, 16))):
        peaks = {b: estimate_training_memory(model, size, b).peak_bytes for b in (2, 3, 5, 8)}
        slope = peaks[3] - peaks[2]
        assert slope > 0
        for b in (5, 8):
            assert peaks[b] == peaks[2] + (b - 2) * slope
        acts = {b: estimate_training_memory(model, size, b).activations_bytes for b in (2, 4)}
        assert acts[4] - 8 == 2 * (acts[2] - 8)


def test_max_batch_is_the_largest_that_fits() -> None:
    model = convnet()
    budget = 3 * 2**20
    b = max_batch(model, (3, 16, 16), budget, optimizer="adam")
    assert b > 1
    assert estimate_training_memory(model, (3, 16, 16), b, optimizer="adam").peak_bytes <= budget
    assert estimate_training_memory(model, (3, 16, 16), b + 1, optimizer="adam").peak_bytes > budget
    one = estimate_training_memory(model, (3, 16, 16), 1).peak_bytes
    assert max_batch(model, (3, 16, 16), one - 1) == 0
    # a single image runs torch's im2col path, so peak(1) can exceed peak(2): only "fits" is asked
    b = max_batch(model, (3, 16, 16), one)
    assert estimate_training_memory(model, (3, 16, 16), b).peak_bytes <= one
    assert estimate_training_memory(model, (3, 16, 16), b + 1).peak_bytes > one


def test_nothing_is_allocated_for_a_huge_model() -> None:
    # 100k x 100k float32 weights are 40 GB: built on the meta device, estimated from shapes alone
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(100_000, 100_000), nn.Linear(100_000, 10))
    est = estimate_training_memory(model, (100_000,), 2, optimizer="sgd")
    assert est.params_bytes == 4 * (100_000 * 100_000 + 100_000 + 100_000 * 10 + 10)
    assert est.peak_bytes >= 2 * est.params_bytes
    assert model.training


def test_tied_weights_count_once_and_mode_is_restored() -> None:
    emb = nn.Linear(6, 6, bias=False)
    model = nn.Sequential(emb, nn.ReLU(), emb).eval()
    est = estimate_training_memory(model, (6,), 2, optimizer="momentum")
    assert est.params_bytes == est.optimizer_bytes == 6 * 6 * 4
    assert not model.training


def test_branches_concat_and_residuals() -> None:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Conv2d(16, 8, 1)
            self.b = nn.Sequential(
                nn.Conv2d(16, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True)
            )
            self.head = nn.Linear(16, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([self.a(x), self.b(x)], 1) + x  # Inception-style concat, ResNet-style add
            return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))

    est = estimate_training_memory(Block(), (16, 12, 12), 4)
    assert est.buffers_bytes == 4 * (8 + 8) + 8  # BN running mean/var, num_batches_tracked
    assert est.activations_bytes > 4 * 4 * 16 * 12 * 12  # at least the concatenated map


def test_estimate_matches_the_allocator_during_a_real_step() -> None:
    """Independent check: the c10 CPU allocator's own records of a real steady-state step."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 12 * 12, 10),
    )
    x, y = torch.randn(8, 3, 24, 24), torch.zeros(8, dtype=torch.long)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:  # the profiler's raw records moved in this torch version
        pytest.skip("torch.profiler exposes no raw allocation records")
    events = results.events()
    live = growth = 0
    for _, n in sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]"):
        live += n
        growth = max(growth, live)
    est = estimate_training_memory(model, (3, 24, 24), 8, optimizer="momentum")
    assert est.peak_bytes - est.persistent_bytes == pytest.approx(growth, rel=0.10)


def test_user_errors() -> None:
    with pytest.raises(ConvnetError, match="optimizer"):
        estimate_training_memory(mlp(), (A,), 2, optimizer="rmsprop")
    with pytest.raises(ConvnetError, match="dtype"):
        estimate_training_memory(mlp(), (A,), 2, dtype="int8")
    with pytest.raises(ConvnetError, match="batch"):
        estimate_training_memory(mlp(), (A,), 0)
    with pytest.raises(ConvnetError, match="trainable"):
        estimate_training_memory(mlp().requires_grad_(False), (A,), 2)


@settings(max_examples=12, deadline=None)
@given(
    a=st.integers(1, 64),
    h=st.integers(1, 64),
    k=st.integers(2, 16),
    b=st.integers(2, 32),
    optimizer=st.sampled_from(["sgd", "momentum", "adam"]),
)
def test_any_mlp_matches_hand_count(a: int, h: int, k: int, b: int, optimizer: str) -> None:
    model = nn.Sequential(nn.Linear(a, h), nn.ReLU(), nn.Linear(h, k))
    est = estimate_training_memory(model, (a,), b, optimizer=optimizer)
    p = 4 * (a * h + h + h * k + k)
    state = {"sgd": 0, "momentum": p, "adam": 2 * p + 4 * 4}[optimizer]
    assert (est.params_bytes, est.grads_bytes, est.optimizer_bytes) == (p, p, state)
    assert est.batch_bytes == 4 * b * a + 8 * b
    assert est.activations_bytes == 4 * (b * h + 2 * b * k) + 8
    assert est.peak_bytes >= p + p + state + est.batch_bytes


def test_wrong_input_size_is_a_one_line_shape_error() -> None:
    with pytest.raises(ShapeError, match=r"batch of 2 x 7: .*"):
        estimate_training_memory(mlp(), (7,), 2)
