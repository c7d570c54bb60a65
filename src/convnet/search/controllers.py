"""Controllers: what proposes the next architecture.

- ``reinforce``: Zoph and Le's controller. An LSTM emits one decision per step, each through its
  own softmax over that decision's choices; the chosen value's embedding is the next step's
  input. After a child is scored with reward R, the policy follows REINFORCE with a moving-average
  baseline b and an entropy bonus:

      loss = -(R - b) * sum_t log p(a_t | a_<t) - lambda * sum_t H(p_t)
      b <- beta * b + (1 - beta) * R          (b starts at the first reward)

  so a sample better than the baseline becomes more likely. Its state is a function of its seed
  and of the scored trials in trial-number order, which live in the study: a resumed search (or
  another worker) replays them and continues from the same policy.
- ``random``, ``tpe``, ``nsga2``: Optuna's RandomSampler, TPESampler and NSGAIISampler over the
  same decisions (categorical, by choice index).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from .space import Decision, SearchError

CONTROLLERS = ("reinforce", "random", "tpe", "nsga2")

HIDDEN = 32  # LSTM width (Zoph and Le: 35 units in 2 layers; one layer suffices for ~40 steps)
LR = (
    0.02  # Adam; larger than the paper's 6e-4 because a CPU budget gives tens of trials, not 12,800
)
BASELINE_DECAY = 0.9  # beta of the moving-average baseline
ENTROPY_WEIGHT = 1e-3  # lambda: keeps the policy from collapsing after a few lucky samples
MACS_EXPONENT = -0.07  # MnasNet's w: reward = acc * (MACs / target) ** w above the target


def scalar_reward(values: list[float], objective: str, macs_target: float) -> float:
    """The reward a scalar controller learns from: validation accuracy in [0, 1] ("val"), or,
    for "val-macs", ``acc * (MACs / target) ** -0.07`` when MACs exceed the target (Tan et al.
    2019's soft constraint), else ``acc``."""
    acc = values[0]
    if objective == "val" or len(values) < 2 or values[1] <= macs_target:
        return acc
    return acc * (values[1] / macs_target) ** MACS_EXPONENT


class PolicyLSTM(nn.Module):
    """The controller network: an LSTM cell; per decision t an embedding of its choices (the
    input of step t + 1) and a linear head (hidden -> logits over its choices)."""

    def __init__(self, decisions: list[Decision], hidden: int = HIDDEN) -> None:
        super().__init__()
        self.sizes = [len(d.choices) for d in decisions]
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.cell = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)
        self.embeds = nn.ModuleList(nn.Embedding(n, hidden) for n in self.sizes)

    def forward(
        self, actions: list[int] | None = None, generator: torch.Generator | None = None
    ) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Sample (``actions`` None) or score given actions. Returns (actions, sum_t log p(a_t),
        sum_t H(p_t)), each p_t = softmax(head_t(h_t)), h_t the LSTM state after step t's input."""
        x, state = self.start, None
        chosen, logp, entropy = [], torch.zeros(()), torch.zeros(())
        for t, n in enumerate(self.sizes):
            state = self.cell(x, state)
            log_p = F.log_softmax(self.heads[t](state[0]), dim=-1)[0]
            if actions is None:
                a = int(torch.multinomial(log_p.detach().exp(), 1, generator=generator))
            else:
                a = int(actions[t])
                if not 0 <= a < n:
                    raise SearchError(f"decision {t}: choice {a} outside 0..{n - 1}")
            chosen.append(a)
            logp = logp + log_p[a]
            entropy = entropy - (log_p.exp() * log_p).sum()
            x = self.embeds[t](torch.tensor([a]))
        return chosen, logp, entropy


class Reinforce:
    """REINFORCE over :class:`PolicyLSTM` (see the module docstring), seeded."""

    def __init__(self, decisions: list[Decision], seed: int = 0, lr: float = LR) -> None:
        torch.manual_seed(seed)
        self.seed = seed
        self.policy = PolicyLSTM(decisions)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.baseline: float | None = None
        self.history: list[tuple[int, float, float]] = []  # (trial, reward, baseline after)

    def sample(self, number: int) -> list[int]:
        """The sample for trial ``number``: the same for the same policy and number."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + number)
        with torch.no_grad():
            actions, _, _ = self.policy(generator=g)
        return actions

    def loss(self, actions: list[int], reward: float) -> torch.Tensor:
        """-(R - b) * log p(actions) - lambda * H, with b the baseline before this reward."""
        _, logp, entropy = self.policy(actions)
        advantage = 0.0 if self.baseline is None else reward - self.baseline
        return -advantage * logp - ENTROPY_WEIGHT * entropy

    def update(self, actions: list[int], reward: float, number: int = -1) -> None:
        """One policy-gradient step on a scored sample, then the baseline moves toward R."""
        if not math.isfinite(reward):
            raise SearchError(f"trial {number}: reward {reward!r} is not a finite number")
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(actions, reward).backward()
        self.optimizer.step()
        b = reward if self.baseline is None else self.baseline
        self.baseline = BASELINE_DECAY * b + (1 - BASELINE_DECAY) * reward
        self.history.append((number, reward, self.baseline))


def optuna_sampler(name: str, seed: int):
    """Optuna's sampler for ``name`` (random, tpe, nsga2); the reinforce controller proposes its
    own values, fixed through :func:`fixed_sampler`."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # multivariate: the decisions interact (a stride only matters with its layer present)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=5)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=8)
    if name == "reinforce":
        return fixed_sampler(seed)
    raise SearchError(f"unknown controller {name!r}; give one of {', '.join(CONTROLLERS)}")


def fixed_sampler(seed: int):
    """An Optuna sampler that returns the values set in its ``pending`` dict (the REINFORCE
    controller's sample for the trial at hand); any other parameter is sampled at random.
    Optuna is imported here, so the rest of the package loads without it."""
    import optuna

    class FixedSampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self.pending: dict[str, Any] = {}
            self.fallback = optuna.samplers.RandomSampler(seed=seed)

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if param_name in self.pending:
                return self.pending[param_name]
            return self.fallback.sample_independent(study, trial, param_name, param_distribution)

    return FixedSampler()
