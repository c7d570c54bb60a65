"""Optimizers updating a model's parameter arrays in place from its gradients.

Both follow torch.optim's formulas exactly, so a reference net and a torch model trained side
by side stay equal:

- SGD: ``g = grad + weight_decay * p``; ``v = momentum * v + g``; the step is ``g + momentum *
  v`` with Nesterov momentum and ``v`` without; ``p -= lr * step``.
- Adam: ``m = b1 m + (1 - b1) g``; ``v = b2 v + (1 - b2) g**2``; ``p -= lr * m_hat /
  (sqrt(v_hat) + eps)`` with the bias corrections ``m_hat = m / (1 - b1**t)``,
  ``v_hat = v / (1 - b2**t)``.
"""

from __future__ import annotations

import numpy as np

from ..errors import TrainingError

__all__ = ["SGD", "Adam", "Optimizer"]


class Optimizer:
    """Holds the model whose ``params`` and ``grads`` it reads; ``lr`` may be changed between steps."""

    def __init__(self, model, lr: float) -> None:
        if lr <= 0:
            raise TrainingError(f"learning rate must be positive, got {lr}")
        self.model = model
        self.lr = lr
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def step(self) -> None:
        params, grads = self.model.params, self.model.grads
        for name, p in params.items():
            g = grads.get(name)
            if g is not None:
                self._update(name, p, g.astype(p.dtype, copy=False))

    def _update(self, name: str, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay."""

    def __init__(
        self,
        model,
        lr: float = 0.01,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        super().__init__(model, lr)
        if nesterov and momentum <= 0:
            raise TrainingError("Nesterov momentum needs momentum > 0")
        self.momentum, self.weight_decay, self.nesterov = momentum, weight_decay, nesterov

    def _update(self, name, p, g):
        if self.weight_decay:
            g = g + self.weight_decay * p
        if self.momentum:
            st = self.state.get(name)
            if st is None:
                buf = self.state.setdefault(name, {})["momentum"] = g.copy()
            else:
                buf = st["momentum"]
                buf *= self.momentum
                buf += g
            g = g + self.momentum * buf if self.nesterov else buf
        p -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015) with optional L2 weight decay added to the gradient."""

    def __init__(
        self,
        model,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(model, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def _update(self, name, p, g):
        b1, b2 = self.betas
        if self.weight_decay:
            g = g + self.weight_decay * p
        st = self.state.setdefault(name, {"t": 0, "m": np.zeros_like(p), "v": np.zeros_like(p)})
        st["t"] += 1
        st["m"] *= b1
        st["m"] += (1 - b1) * g
        st["v"] *= b2
        st["v"] += (1 - b2) * g * g
        m_hat = st["m"] / (1 - b1 ** st["t"])
        v_hat = st["v"] / (1 - b2 ** st["t"])
        p -= (self.lr * m_hat / (np.sqrt(v_hat) + self.eps)).astype(p.dtype)
