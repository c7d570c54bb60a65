"""Numerical gradient checks: centred differences and the relative error.

``df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / (2h)`` has error O(h**2). Comparing with the
analytic gradient by the relative error ``max |a - n| / max(|a| + |n|, tiny)`` works at any
scale; in float64 a correct layer gives about 1e-7 or less.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["check_layer", "numerical_gradient", "rel_error"]


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max(|a| + |b|)`` elementwise, guarded against 0/0.

    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))) if a.size else 0.0


def numerical_gradient(f: Callable[[], float], x: np.ndarray, h: float = 1e-5) -> np.ndarray:
    """Gradient of the scalar ``f()`` with respect to the array ``x``, which is changed in place
    (and restored) one element at a time.

    >>> x = np.array([1.0, -2.0])
    >>> numerical_gradient(lambda: float(np.sum(x ** 2)), x).round(6)  # 2x
    array([ 2., -4.])
    """
    grad = np.zeros(x.shape, dtype=np.float64)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i].copy()
        x[i] = old + h
        fp = f()
        x[i] = old - h
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad


def check_layer(layer, *inputs: np.ndarray, seed: int = 0, h: float = 1e-5) -> dict[str, float]:
    """Relative errors of a layer's analytic gradients (each input and each parameter).

    The scalar checked is ``sum(out * r)`` for a fixed random ``r``, so ``dout = r``. Inputs and
    parameters should be float64. Returns ``{"x0": err, ..., "weight": err, ...}``.
    """
    rng = np.random.default_rng(seed)
    out = layer.forward(*inputs)
    r = rng.standard_normal(out.shape)

    def f() -> float:
        return float(np.sum(layer.forward(*inputs) * r))

    layer.forward(*inputs)
    dins = layer.backward(r)
    if not isinstance(dins, tuple):
        dins = (dins,)
    analytic = dict(layer.grads)
    errors = {}
    for k, (x, d) in enumerate(zip(inputs, dins)):
        if isinstance(x, np.ndarray) and d is not None:
            errors[f"x{k}"] = rel_error(d, numerical_gradient(f, x, h))
    for name, p in layer.params.items():
        errors[name] = rel_error(analytic[name], numerical_gradient(f, p, h))
    return errors
