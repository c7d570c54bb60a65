"""Architecture search over the notes' pattern language and NASNet's cells (issue 16).

>>> from convnet.search import run
>>> result = run("pattern", "tpe", "mnist-sample", trials=8, out="runs/search")  # doctest: +SKIP
>>> result["leaderboard"][0]["line"]  # doctest: +SKIP

``space`` (search spaces as decisions), ``controllers`` (REINFORCE LSTM; Optuna's random, TPE,
NSGA-II), ``study`` (the worker loop over Optuna's storage), ``report`` (leaderboard, figures),
``driver`` (``run``). Optuna is an optional dependency: ``pip install 'convnet[search]'``.
"""

from .driver import run
from .space import SPACES, Child, Decision, NasnetSpace, PatternSpace, SearchError, make_space
from .study import CONTROLLERS, OBJECTIVES, SearchConfig

__all__ = [
    "CONTROLLERS",
    "OBJECTIVES",
    "SPACES",
    "Child",
    "Decision",
    "NasnetSpace",
    "PatternSpace",
    "SearchConfig",
    "SearchError",
    "make_space",
    "run",
]
