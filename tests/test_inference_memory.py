"""Inference memory (the notes: at test time only the current activations and the parameters
are kept): the estimate against hand arithmetic for a branch that keeps its input alive, against
the c10 CPU allocator's own records of real ``torch.no_grad`` forward passes of five models, the
largest inference batch, and what `convnet summary` prints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from convnet.analysis.memory import (
    estimate_inference_memory,
    estimate_training_memory,
    max_batch,
)


def allocator_peak(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(peak, persistent) bytes of one real no-grad forward pass on the CPU: what stays (weights,
    buffers, the batch) plus the highest running sum of the allocator's records during it."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad():
        model(x)  # kernels loaded, oneDNN primitives cached
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = model(x)
            del out
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:  # the profiler's raw records moved in this torch version
        pytest.skip("torch.profiler exposes no raw allocation records")
    live = peak = 0
    for _, n in sorted(
        (e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]"
    ):
        live += n
        peak = max(peak, live)
    persistent = sum(
        t.untyped_storage().nbytes() for t in [*model.parameters(), *model.buffers(), x]
    )
    return persistent + peak, persistent


@pytest.mark.parametrize(
    ("name", "size", "batch"),
    [
        ("lenet5", (1, 32, 32), 32),  # a plain chain
        ("resnet20", (3, 32, 32), 8),  # shortcuts keep a block's input alive
        ("squeezenet1_1", (3, 64, 64), 4),  # fire modules: two paths concatenated
        ("nin_cifar", (3, 32, 32), 4),  # 1x1 convolutions, read without im2col
    ],
)
def test_estimate_matches_the_allocator_of_a_real_forward_pass(name, size, batch):
    from convnet.models import create_model

    torch.manual_seed(0)
    model = create_model(name, in_chans=size[0]).eval()
    measured, persistent = allocator_peak(model, torch.randn(batch, *size))
    est = estimate_inference_memory(model, size, batch)
    assert est.params_bytes + est.buffers_bytes + est.batch_bytes == persistent
    assert est.peak_bytes == pytest.approx(measured, rel=0.10)
    # the part that is not weights, where an error would hide behind a large model's weights
    assert est.peak_bytes - persistent == pytest.approx(measured - persistent, rel=0.10)


B, A, H, K = 6, 20, 30, 5


class TwoPaths(nn.Module):
    """Two Linear paths from one input, concatenated, then a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(A, H), nn.Linear(A, H), nn.Linear(2 * H, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.a(x)
        v = self.b(x)  # x is still needed here, and u waits for the concatenation
        c = torch.cat([u, v], 1)
        return self.head(c)  # u and v are locals until forward returns: alive with c


def test_branches_keep_their_inputs_alive_by_hand():
    est = estimate_inference_memory(TwoPaths(), (A,), B)
    params = 4 * (2 * (A * H + H) + 2 * H * K + K)
    assert est.params_bytes == params and est.batch_bytes == 4 * B * A
    # at the head: u, v (B x H each), c (B x 2H) and the logits (B x K)
    assert est.activations_bytes == 4 * (4 * B * H + B * K)
    assert est.peak_bytes == params + 4 * B * A + 4 * (4 * B * H + B * K)
    chain = nn.Sequential(nn.Linear(A, H), nn.ReLU(), nn.Linear(H, K))
    # a chain frees each input once the next layer has run: a layer's input and output at most
    assert estimate_inference_memory(chain, (A,), B).activations_bytes == 4 * 2 * B * H


def test_inference_needs_less_than_training_and_the_largest_batch_fits():
    from convnet.models import create_model

    model = create_model("lenet5")
    size = (1, 32, 32)
    inference = estimate_inference_memory(model, size, 16)
    training = estimate_training_memory(model, size, 16)
    assert inference.peak_bytes < training.peak_bytes
    assert inference.activations_bytes < training.activations_bytes
    assert model.training  # the mode is restored
    budget = 4 * 2**20
    b = max_batch(model, size, budget, inference=True)
    assert estimate_inference_memory(model, size, b).peak_bytes <= budget
    assert estimate_inference_memory(model, size, b + 1).peak_bytes > budget
    assert b > max_batch(model, size, budget)  # training holds far more per image


def test_summary_reports_inference_memory_and_its_largest_batch(cli):
    import convnet

    line = "INPUT[16x16x3] -> CONV3-8 -> RELU -> POOL2 -> FC-10"
    t = convnet.summary(line, batch_size=8, memory_gb=0.001).totals
    model = convnet.notation.build(line)
    est = estimate_inference_memory(model, (3, 16, 16), 8)
    assert t["inference_bytes"] == est.peak_bytes
    assert t["inference_activation_bytes"] == est.activations_bytes
    budget = int(0.001 * 2**30)
    assert t["max_inference_batch"] == max_batch(model, (3, 16, 16), budget, inference=True)
    code, out, err = cli("summary", "lenet5", "--batch", "8", "--memory", "0.01")
    assert code == 0, err
    assert "Inference memory at batch 8 (no gradients):" in out
    assert "Largest inference batch that fits in the given memory:" in out
    code, out, _ = cli("summary", "lenet5", "--batch", "8", "--format", "json")
    totals = json.loads(out)["totals"]
    assert totals["inference_bytes"] < totals["training_bytes"]
    code, out, _ = cli("summary", "lenet5")  # no estimate unless asked: a summary stays fast
    assert "Inference memory" not in out
