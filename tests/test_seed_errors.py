"""The errors in the notes that docs/notes.md flags, each computed from both sides.

- seed 003, eq. 3.2: LRN with k=0, n=N, alpha=1, beta=0.5 "is" L2 normalization across channels.
  With the window centred on each channel (eq. 3.1) it is only when the window reaches every
  channel from every channel: n >= 2N-1 (odd n), not n = N.
- seed 004: "Inception-v4 is ResNet + Inception". Inception-v4 has no shortcut connections; the
  network that adds them to Inception modules is Inception-ResNet.
- seed 001: the common pooling setting "F=2, P=2". It is F=2, S=2: padding 2 makes the volume
  grow (or, with S=2, not halve) and torch refuses it.
- seeds 000 and 002 count dilation from 0 (dilation 0 is the ordinary convolution); torch and this
  toolkit count it from 1 (dilation 1 is ordinary, dilation 2 reads x[0], x[2], x[4]).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from convnet.analysis.depth import weight_layers
from convnet.arith import effective_kernel, output_size
from convnet.layers import local_response_norm
from convnet.resolve import resolve_model


def _eq_3_1(a: np.ndarray, k: float, n: int, alpha: float, beta: float) -> np.ndarray:
    """Seed 003's eq. 3.1 as written, channel by channel over a[d] (axis 0):
    b[d] = a[d] / (k + alpha * sum_{j=max(0, d-n/2)}^{min(N-1, d+n/2)} a[j]^2)^beta."""
    big_n = a.shape[0]
    out = np.empty_like(a)
    for d in range(big_n):
        lo, hi = max(0, d - n // 2), min(big_n - 1, d + n // 2)
        out[d] = a[d] / (k + alpha * (a[lo : hi + 1] ** 2).sum(0)) ** beta
    return out


@pytest.mark.parametrize("channels", [4, 7])
def test_lrn_is_l2_normalization_only_when_the_window_reaches_every_channel(channels):
    rng = np.random.default_rng(channels)
    a = rng.standard_normal((channels, 3, 3)) + 0.5
    l2 = a / np.sqrt((a**2).sum(0))  # L2 normalization across the channels at each pixel

    def tool(n: int) -> np.ndarray:  # the toolkit's LRN with the paper's constants
        lrn = local_response_norm(n=n, alpha=1.0, beta=0.5, k=0.0)
        return lrn(torch.from_numpy(a)[None]).numpy()[0]

    # eq. 3.2's claim, n = N: neither the paper's formula nor the toolkit's layer is L2
    assert not np.allclose(_eq_3_1(a, 0, channels, 1, 0.5), l2)
    assert not np.allclose(tool(channels), l2)
    # the window centred on channel d spans d - n//2 .. d + n//2: it covers channels 0..N-1 from
    # d = 0 and from d = N-1 only when n//2 >= N-1, i.e. n >= 2N-1 for an odd n
    n = 2 * channels - 1
    assert np.allclose(_eq_3_1(a, 0, n, 1, 0.5), l2) and np.allclose(tool(n), l2)
    assert not np.allclose(_eq_3_1(a, 0, n - 2, 1, 0.5), l2)  # the next odd n below is short


def test_inception_v4_has_no_shortcuts_inception_resnet_does():
    def shortcuts(name: str) -> int:
        model = resolve_model(name, meta=True).model
        return weight_layers(model, (3, 299, 299)).sum_merges  # additions of two equal volumes

    assert shortcuts("inception_v4") == 0
    # Szegedy et al. 2016, figure 15: 10 Inception-ResNet-A, 20 -B and 10 -C blocks, each adding
    # its branches' projection back to its input
    assert shortcuts("inception_resnet_v2") == 40


def test_pooling_f2_p2_does_not_downsample_f2_s2_does():
    w = 224
    assert output_size(w, 2, s=2, p=0) == w // 2 == 112  # F=2, S=2: the notes' halving
    assert output_size(w, 2, s=1, p=2) == 227  # F=2, P=2 read literally (S=1): it grows
    assert output_size(w, 2, s=2, p=2) == 114  # even with S=2, padding 2 spoils the halving
    x = torch.zeros(1, 1, w, w)
    assert F.max_pool2d(x, 2, 2).shape[-1] == 112
    with pytest.raises(RuntimeError, match="pad should be at most half"):
        F.max_pool2d(x, 2, 2, padding=2)  # torch refuses padding above F/2 for pooling


def test_dilation_counts_from_one_here_from_zero_in_the_seeds():
    x = torch.arange(1.0, 8.0).view(1, 1, 7)  # x[0..6] = 1..7
    w = torch.tensor([[[2.0, 3.0, 5.0]]])
    xs, ws = x.flatten(), w.flatten()
    seeds_dilation_0 = ws[0] * xs[0] + ws[1] * xs[1] + ws[2] * xs[2]  # seed 000, "dilation 0"
    seeds_dilation_1 = ws[0] * xs[0] + ws[1] * xs[2] + ws[2] * xs[4]  # seeds 000/002, "dilation 1"
    assert F.conv1d(x, w, dilation=1)[0, 0, 0] == seeds_dilation_0
    assert F.conv1d(x, w, dilation=2)[0, 0, 0] == seeds_dilation_1
    # the toolkit's arithmetic follows torch: dilation d spans d*(F-1)+1 pixels
    assert effective_kernel(3, 1) == 3 and effective_kernel(3, 2) == 5
