import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# The cores shared by the test processes (pytest -n N): two processes of two threads each on two
# cores spin their thread pools against each other instead of computing.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // _workers)))


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    from convnet.cli import main

    def run(*argv: str):
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
