import gc
import os
import sys

# Compiled bytecode is kept, even where the environment says not to (PYTHONDONTWRITEBYTECODE):
# without it, each of the suite's processes (two workers and the ~40 subprocesses that test the
# CLI, SIGTERM and multi-process training) compiles convnet's sources again, about 0.8 s each,
# and pytest rewrites every test module's assertions anew in each worker.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

import pytest  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_configure(config):
    """In each process that runs tests, share the cores among the test processes (pytest -n N):
    two processes of two threads each on two cores spin their thread pools against each other
    instead of computing. pytest-xdist's controller runs no test, so it does not import torch
    (3 s of CPU on a 2-core machine, taken from the two workers starting beside it)."""
    # Last of pytest's clean-ups (they run in reverse; this conftest's configure runs first):
    # what is still alive stays out of Python's collections at exit, which otherwise walk
    # every object the tests left (torch, models, figures): seconds before each worker ends.
    config.add_cleanup(gc.freeze)
    if config.getoption("numprocesses", None) and not hasattr(config, "workerinput"):
        return
    import torch

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    from convnet.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def pytest_collection_modifyitems(config, items):
    """Modules with tests marked ``slow`` (multi-process runs of 5-25 s) go first, their slow
    tests first within them: pytest -n 2 hands out the first tests alternately, so both workers
    start on the long ones and end together on short ones, instead of one finishing a 20 s test
    alone. A module stays contiguous, so its module-scoped fixtures are built once per worker."""
    slow = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    first = {name: n for n, name in enumerate(dict.fromkeys(i.module.__name__ for i in items))}

    def key(item):
        name = item.module.__name__
        if name not in slow:
            return (1, 0, 0)
        return (0, first[name], item.get_closest_marker("slow") is None)

    items.sort(key=key)  # stable: the order within each group is kept
