"""Scratch memory a CPU convolution holds while it runs, for the training-memory estimate.

Besides the storages an operator returns, oneDNN convolutions compute in a channel-blocked
layout and torch's native kernel unfolds its input into im2col columns; neither shows up as an
output, but both count towards the peak a training step reaches.
"""

from __future__ import annotations

import math

import torch

HALF = (torch.bfloat16, torch.float16)


def conv_workspace(func, args, out, device: torch.device) -> int:
    """Scratch bytes a CPU convolution holds beside its inputs and outputs while it runs.

    Observed in torch 2.13's CPU build through the profiler's allocation records:

    - oneDNN (``mkldnn_convolution``) computes in a channel-blocked layout (channels padded to
      the SIMD width: 16 with AVX-512, else 8) and reorders into the plain NCHW result. Forward
      holds ``max(input_b + weight_b, output_b)``, backward ``grad_output_b + input_b`` (the
      input copy only when the weight gradient is needed); inputs with fewer than 16 channels
      (an image) are read in place.
    - the native path (``slow_conv2d``, chosen for a single small image and kernels of at most
      3x3) unfolds the input into im2col columns ``N x (C/g)kk x H'W'``, twice in backward;
      a forward 1x1 kernel at stride 1 without padding reads the input as its columns.
    """
    if device.type != "cpu":
        return 0
    if func is torch.ops.aten.convolution.default:
        x, w, _, stride, padding, dilation, transposed, _, groups = args[:9]
        backward, need_input_copy = False, True
    elif func is torch.ops.aten.conv2d.default:
        # under torch.inference_mode conv2d reaches the dispatch mode undecomposed, with its
        # trailing default arguments (stride, padding, dilation 1, 0, 1; groups 1) left out
        x, w = args[0], args[1]
        stride = args[3] if len(args) > 3 else (1, 1)
        padding = args[4] if len(args) > 4 else (0, 0)
        dilation = args[5] if len(args) > 5 else (1, 1)
        groups = args[6] if len(args) > 6 else 1
        transposed, backward, need_input_copy = False, False, True
    elif func is torch.ops.aten.convolution_backward.default:
        grad_out, x, w, _, stride, padding, dilation, transposed, _, groups, mask = args[:11]
        backward, need_input_copy = True, bool(mask[1])
    else:
        return 0
    if transposed or x.dim() != 4:
        return 0
    e = (grad_out if backward else x).element_size()
    n, c_in = x.shape[0], x.shape[1]
    c_out, kh, kw = w.shape[0], w.shape[-2], w.shape[-1]
    h_out, w_out = (grad_out if backward else out).shape[-2:]
    if not uses_onednn(x, w, stride, dilation, groups):
        if not backward and _pointwise(w, stride, padding):
            return 0  # a 1x1 kernel at stride 1 without padding reads the input as its columns
        cols = n * (c_in // groups) * kh * kw * h_out * w_out * e
        return 2 * cols if backward else cols
    block = 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8
    pad = lambda c: math.ceil(c / block) * block  # noqa: E731
    input_b = n * pad(c_in) * x.shape[2] * x.shape[3] * e if c_in >= 16 else 0
    result_b = n * pad(c_out) * h_out * w_out * e
    if backward:
        return result_b + (input_b if need_input_copy else 0)
    weight_b = pad(c_out) * (c_in // groups) * kh * kw * e
    if any(_channels_last(t) for t in (x, w)):
        # channels-last (torch's rule: the input or the weight is): oneDNN writes the NHWC
        # result in place and only reorders the weights (profiler records, torch 2.13: a 64->64
        # 3x3 conv at 224x224 adds its output and 0.14 MiB; NCHW adds a blocked output too)
        return weight_b
    return max(input_b + weight_b, result_b)


def _channels_last(t: torch.Tensor) -> bool:
    """Laid out NHWC, not merely ambiguous (a 1x1 kernel or one channel fits either layout)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def _pointwise(w, stride, padding) -> bool:
    """A 1x1 convolution at stride 1 without padding: torch's native kernel skips im2col."""
    ones = lambda v: all(int(s) == 1 for s in ([v] if isinstance(v, int) else v))  # noqa: E731
    zeros = all(int(p) == 0 for p in ([padding] if isinstance(padding, int) else padding))
    return w.shape[-2] == 1 and w.shape[-1] == 1 and ones(stride) and zeros


def uses_onednn(x, w, stride, dilation, groups) -> bool:
    """torch's rule (aten/src/ATen/native/Convolution.cpp, ``use_mkldnn``) for CPU convolutions."""
    if not torch.backends.mkldnn.is_available() or not torch.backends.mkldnn.enabled:
        return False
    if x.dtype in HALF:
        return True
    if x.dtype != torch.float32:
        return False
    n, kh, kw = x.shape[0], w.shape[-2], w.shape[-1]
    strided_or_dilated = any(s != 1 for s in stride) or any(d != 1 for d in dilation)
    if not (strided_or_dilated or n >= 16 or kh != 1 or kw != 1 or torch.get_num_threads() > 1):
        return False
    return groups > 1 or (kh > 3 and kw > 3) or n > 1 or x.numel() > 20480
