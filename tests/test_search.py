"""convnet search: spaces against the notes' rule and torch, REINFORCE against a hand-computed
policy gradient, exact trial counting with workers and after a kill, real PostgreSQL storage."""

from __future__ import annotations

import dataclasses
import glob
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from convnet.search.controllers import BASELINE_DECAY, ENTROPY_WEIGHT, Reinforce
from convnet.search.report import pareto_front
from convnet.search.space import Decision, NasnetSpace, PatternSpace, SearchError
from convnet.search.study import parse_budget, postgres_driver, trial_val

optuna = pytest.importorskip("optuna", reason="convnet[search] is not installed")

SPACE = PatternSpace((1, 28, 28), 10)


@pytest.fixture(scope="module")
def tiny():
    """300 training and 100 test images of the bundled MNIST sample, their 16x16 centres."""
    from convnet.data import load

    d = load("mnist-sample")
    crop = (slice(None), slice(None), slice(6, 22), slice(6, 22))  # 16x16 centres: cheap children
    return dataclasses.replace(
        d,
        x_train=d.x_train[:300][crop].contiguous(),
        y_train=d.y_train[:300],
        x_test=d.x_test[:100][crop].contiguous(),
        y_test=d.y_test[:100],
    )


def _fits_by_hand(size: int, f: int, s: int, p: int) -> bool:
    out = Fraction(size - f + 2 * p, s) + 1
    return out.denominator == 1 and out >= 1


def _walk(v: dict, size: int = 28) -> bool:
    """Whether every CONV (P = (F-1)/2) and POOL (2/2) of the sample fits, by the notes' formula."""
    for m in range(v["M"]):
        for n in range(v[f"N{m}"]):
            f, s = v[f"F{m}{n}"], v[f"S{m}{n}"]
            if not _fits_by_hand(size, f, s, (f - 1) // 2):
                return False
            size = (size - f + 2 * ((f - 1) // 2)) // s + 1
        if v[f"pool{m}"]:
            if not _fits_by_hand(size, 2, 2, 0):
                return False
            size = (size - 2) // 2 + 1
    return True


samples = st.tuples(*(st.integers(0, len(d.choices) - 1) for d in SPACE.decisions)).map(list)


@settings(max_examples=40, deadline=None)
@given(samples)
def test_pattern_space_invalid_by_the_notes_rule_and_counts_match_torch(sample):
    from convnet.analysis import summary
    from convnet.notation import build

    child = SPACE.decode(sample)
    assert (child.invalid is None) == _walk(SPACE.values(sample))
    if child.invalid:
        return
    model = build(child.text)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert child.params == sum(p.numel() for p in model.parameters())
    assert child.macs == summary(model, (1, 28, 28)).totals["macs"]


def test_nasnet_space_builds_the_sampled_cells():
    space = NasnetSpace((1, 28, 28), 10)
    sample = [len(d.choices) - 1 for d in space.decisions]  # last input, sep_conv_7x7, concat
    child = space.decode(sample)
    assert child.invalid is None
    model = space.build(child)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert child.params == sum(p.numel() for p in model.parameters())
    assert space.cells(sample)["normal"][1] == [2, 2, "sep_conv_7x7", "sep_conv_7x7", "concat"]
    with pytest.raises(SearchError):
        space.decode(sample[:-1])


def test_reinforce_gradient_is_the_hand_computed_policy_gradient():
    """One decision of three choices: d loss / d logits = A (p - e_a) + lambda p (log p + H),
    with loss = -A log p_a - lambda H and A = R - b."""
    ctl = Reinforce([Decision("x", (0, 1, 2))], seed=3)
    ctl.baseline, reward, a = 0.3, 0.8, 2
    with torch.no_grad():
        h, _ = ctl.policy.cell(ctl.policy.start)
        z = ctl.policy.heads[0](h)[0].double().numpy()
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    ent = -(p * np.log(p)).sum()
    advantage = reward - 0.3
    expected = advantage * (p - np.eye(3)[a]) + ENTROPY_WEIGHT * p * (np.log(p) + ent)
    ctl.optimizer.zero_grad()
    ctl.loss([a], reward).backward()
    np.testing.assert_allclose(
        ctl.policy.heads[0].bias.grad.numpy(), expected, rtol=1e-5, atol=1e-8
    )
    # the step makes the better-than-baseline choice more likely, and the baseline moves to R
    before = math.log(p[a])
    ctl.update([a], reward)
    with torch.no_grad():
        _, after, _ = ctl.policy([a])
    assert float(after) > before
    assert ctl.baseline == pytest.approx(BASELINE_DECAY * 0.3 + (1 - BASELINE_DECAY) * 0.8)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1, max_size=12))
def test_pareto_front_is_every_undominated_point(points):
    front = set(pareto_front(points))
    for i, (m, a) in enumerate(points):
        beaten = any(m2 <= m and a2 >= a and (m2, a2) != (m, a) for m2, a2 in points)
        assert (i in front) == (not beaten)


@given(st.floats(0.01, 1e4), st.sampled_from(["s", "m", "h"]))
def test_budget_parses_units(value, unit):
    assert parse_budget(f"{value}{unit}") == pytest.approx(
        value * {"s": 1, "m": 60, "h": 3600}[unit]
    )


@pytest.mark.parametrize("text", ["0", "-3m", "ten minutes", "nanm"])
def test_budget_refuses_nonsense(text):
    with pytest.raises(SearchError, match="--budget"):
        parse_budget(text)


def _trained(out: Path):
    from optuna.trial import TrialState

    study = optuna.load_study(study_name="search", storage=f"sqlite:///{out / 'study.db'}")
    return study, study.get_trials(states=(TrialState.COMPLETE,))


def test_search_counts_invalid_samples_and_never_reads_test(tiny, tmp_path):
    from convnet.search import run
    from convnet.search.study import SearchConfig, search_data

    full, child = search_data(SearchConfig(val_split=0.2), tiny)
    assert child.x_test is full.x_val and child.y_test is full.y_val  # "test" is validation
    r = run("pattern", "random", tiny, trials=2, out=str(tmp_path / "s"), top_k=0, progress=False,
            child_images=100)  # fmt: skip
    study, done = _trained(tmp_path / "s")
    invalid = [t for t in study.get_trials() if "invalid" in t.user_attrs]
    assert len(done) == 2 and r["counts"]["trained"] == 2
    assert r["counts"]["invalid"] == len(invalid) > 0  # random hits stride-2 misfits on 16x16
    space16 = PatternSpace((1, 16, 16), 10)
    for t in invalid:
        v = space16.values([t.params[d.name] for d in SPACE.decisions])
        assert not _walk(v, 16)
    assert (tmp_path / "s" / "leaderboard.csv").read_text().count("\n") == 3
    assert (tmp_path / "s" / "pareto.png").stat().st_size > 1000


@pytest.mark.slow  # two spawned interpreters import torch: ~20 s on 2 busy cores
def test_two_workers_train_the_requested_trials_exactly_once(tiny, tmp_path):
    from convnet.search import run

    run("pattern", "tpe", tiny, trials=3, workers=2, out=str(tmp_path / "w"), top_k=0,
        child_images=100, progress=False)  # fmt: skip
    study, done = _trained(tmp_path / "w")
    assert len(done) == 3
    assert {t.user_attrs["worker"] for t in study.get_trials()} <= {0, 1}


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_resume_after_a_kill_trains_the_interrupted_child_once(tiny, tmp_path):
    """A search killed mid-trial leaves a RUNNING trial; --resume FAILs it, trains its decisions
    again under a new number, and stops at the requested count."""
    from convnet.search import run

    out = tmp_path / "k"
    run("pattern", "reinforce", tiny, trials=1, out=str(out), top_k=0, child_images=100, objective="val-macs",
        progress=False)  # fmt: skip
    study, done = _trained(out)
    study.enqueue_trial({d.name: 0 for d in SPACE.decisions})  # M = K = 0: INPUT -> FC, valid
    killed = study.ask()  # what a killed worker leaves: decoded, valid, never told
    for d in SPACE.decisions:
        killed.suggest_categorical(d.name, list(range(len(d.choices))))
    killed.set_user_attr("valid", True)
    r = run("pattern", "reinforce", tiny, trials=2, out=str(out), top_k=0, child_images=100, objective="val-macs",
            progress=False, resume=True)  # fmt: skip
    study, done = _trained(out)
    assert len(done) == 2 and r["counts"]["interrupted"] == 1
    retry = [t for t in done if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].params == killed.params
    assert (out / "controller.png").is_file()


@pytest.mark.slow  # a long multi-process or end-to-end test: run first
def test_max_macs_rejects_untrained_and_asha_halves_by_its_rule(tiny, tmp_path):
    """--max-macs: a sample over the limit (its MACs traced by the summary of the built net, not
    the space's arithmetic) is PRUNED untrained. --pruner asha: a child trains past epoch 1
    exactly when its validation there is within the best third of the values reported at epoch
    1 so far, the first ones going on when best (successive halving, eta = 3). The retrained
    line chosen is the one with the best validation after retraining."""
    from convnet.analysis import summary
    from convnet.notation import build
    from convnet.search import run

    limit = 20_000
    r = run("pattern", "random", tiny, trials=5, child_epochs=3, pruner="asha", max_macs=limit,
            out=str(tmp_path / "a"), top_k=2, final_epochs=1, child_images=60, progress=False)  # fmt: skip
    study = optuna.load_study(
        study_name="search", storage=f"sqlite:///{tmp_path / 'a' / 'study.db'}"
    )
    trials = study.get_trials()
    over = [t for t in trials if "over_macs" in t.user_attrs]
    assert r["counts"]["over_macs"] == len(over) > 0
    for t in over:
        assert "seconds" not in t.user_attrs and t.state.name == "PRUNED"
        net = build(t.user_attrs["text"], num_classes=10)
        assert summary(net, (1, 16, 16)).totals["macs"] > limit
    children = sorted((t for t in trials if "seconds" in t.user_attrs), key=lambda t: t.number)
    assert len(children) == 5 == r["counts"]["trained"] + r["counts"]["halved"]
    seen: list[float] = []
    for t in children:
        v = t.intermediate_values[1]
        competing = sorted([*seen, v], reverse=True)
        went_on = v >= competing[max(len(competing) // 3 - 1, 0)]
        assert t.user_attrs["epochs"] == (3 if went_on else 1)
        assert t.state.name == ("COMPLETE" if went_on else "PRUNED")
        seen.append(v)
    assert r["counts"]["halved"] == sum(t.user_attrs["epochs"] == 1 for t in children) > 0
    assert all(row["macs"] <= limit for row in r["leaderboard"])
    # the leaderboard's order, written out: best validation top-1, then lower validation loss
    # (the child's best epoch's, as fit reports it), then fewer MACs
    expect = sorted(children, key=lambda t: (-trial_val(t), t.user_attrs["val_loss"],
                                             t.user_attrs["macs"], t.number))  # fmt: skip
    assert [row["trial"] for row in r["leaderboard"]] == [t.number for t in expect]
    assert [row["val_loss"] for row in r["leaderboard"]] == [
        t.user_attrs["val_loss"] for t in expect
    ]
    retrained = {int(k): v for k, v in r["final"].items()}
    assert len(retrained) == 2
    best = max(retrained.values(), key=lambda v: v["val_top1"])["val_top1"]
    assert r["chosen"]["final_val_top1"] == best and r["chosen"]["trial"] in retrained


def test_chosen_is_the_best_retrained_validation_then_lower_loss_then_fewer_macs():
    from convnet.search.driver import chosen, distinct_lines

    rows = [
        {"rank": 1, "trial": 7, "macs": 900, "test_top1": 99.0},
        {"rank": 2, "trial": 3, "macs": 500, "test_top1": 90.0},
        {"rank": 3, "trial": 5, "macs": 100, "test_top1": 95.0},
        {"rank": 4, "trial": 9, "macs": 50, "test_top1": None},
    ]
    final = {7: {"val_top1": 97.0}, 3: {"val_top1": 98.0}, 5: {"val_top1": 98.0}}
    assert chosen(rows, final)["trial"] == 5  # test never decides: trial 7 has the best test
    final[3]["val_loss"], final[5]["val_loss"] = 0.05, 0.09  # the same top-1, 3 more sure
    assert chosen(rows, final)["trial"] == 3
    final[7]["val_loss"] = 0.01  # a lower loss never outranks a better top-1
    assert chosen(rows, final)["trial"] == 3
    assert chosen(rows, {}) is None
    lines = [{"line": x, "rank": i} for i, x in enumerate("aabacd", 1)]  # best first
    assert [(r["line"], r["rank"]) for r in distinct_lines(lines, 3)] == [
        ("a", 1),
        ("b", 3),
        ("c", 5),
    ]
    assert len(distinct_lines(lines, 9)) == 4 and distinct_lines(lines, 0) == []


def test_search_cli_errors_are_one_line(tmp_path, capsys):
    from convnet.cli import main

    assert main(["search", "--budget", "soon", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("convnet search: error: --budget") and err.count("\n") == 1
    out = str(tmp_path / "y")
    assert main(["search", "--pruner", "asha", "--objective", "val-macs", "--out", out]) == 2
    err = capsys.readouterr().err
    assert "--objective val" in err and err.count("\n") == 1


def test_missing_optuna_says_how_to_install(monkeypatch):
    from convnet.search.study import need_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(SearchError, match=r"pip install 'convnet\[search\]'"):
        need_optuna()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres():
    """A throwaway PostgreSQL cluster (Debian's postgresql package) on a free local port."""
    pytest.importorskip("psycopg2", reason="psycopg2 is not installed (convnet[search])")
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    bindir = Path(bins[-1]).parent
    as_user = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
    tmp = tempfile.mkdtemp(prefix="convnet-pg-")
    os.chmod(tmp, 0o777)
    data, port = Path(tmp) / "data", _free_port()
    run = lambda *a: subprocess.run([*as_user, *a], check=True, capture_output=True, timeout=120)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "-U", "convnet", "--auth=trust")
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        opts,
        "-w",
        "-l",
        str(Path(tmp) / "log"),
        "start",
    )
    try:
        yield f"postgresql://convnet@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_postgresql_storage_shares_one_study(tiny, tmp_path, postgres):
    """Two searches (two machines) with one --storage URL fill one study to the count."""
    from convnet.search import run

    kw = dict(trials=2, top_k=0, child_images=100, progress=False, storage=postgres)
    run("pattern", "random", tiny, out=str(tmp_path / "a"), **kw)
    r = run("pattern", "random", tiny, out=str(tmp_path / "b"), **{**kw, "trials": 3})
    study = optuna.load_study(study_name="search", storage=postgres_driver(postgres))
    assert len([t for t in study.get_trials() if t.state.name == "COMPLETE"]) == 3
    assert r["counts"]["trained"] == 3


def test_report_has_a_search_section(tmp_path):
    from convnet.search.report import plot_pareto, write_leaderboard
    from convnet.viz import build_report

    rows = [
        dict(rank=1, trial=4, line="INPUT[28x28x1] -> CONV3-8 -> RELU -> POOL -> FC-10",
             val_top1=91.5, epochs=9, params=15_770, macs=98_000, seconds=2.0, test_top1=92.25),
        dict(rank=2, trial=1, line="INPUT[28x28x1] -> FC-10", val_top1=85.0, epochs=1,
             params=7_850, macs=7_840, seconds=1.0, test_top1=None),
    ]  # fmt: skip
    pick = {**rows[0], "final_val_top1": 97.5}
    extra = {"settings": {"space": "pattern"}, "counts": {"trained": 2}, "chosen": pick}
    write_leaderboard(tmp_path, rows, extra)
    plot_pareto(rows, tmp_path / "pareto.png", 416_520)
    html = build_report(tmp_path).read_text()
    assert "Architecture search" in html and "CONV3-8 -&gt; RELU" in html
    assert "92.25" in html and "98,000" in html and "data:image/png;base64" in html
    assert "Chosen on validation after retraining: trial 4" in html and "97.50%" in html


def test_nasnet_search_line_retrains_from_its_file(tiny, tmp_path):
    """A NASNet child's leaderboard line is a nets/trial_N.py:Net file that the trainer (as
    `convnet train LINE`) rebuilds: the top line is retrained from it and scored on test."""
    from convnet.search import run

    r = run("nasnet", "nsga2", tiny, trials=1, out=str(tmp_path / "n"), top_k=1, final_epochs=1,
            child_images=64, progress=False)  # fmt: skip
    top = r["leaderboard"][0]
    path, name = top["line"].rsplit(":", 1)
    assert name == "Net" and Path(path).is_file()
    assert top["test_top1"] is not None and 0 <= top["test_top1"] <= 100
    assert r["final"][top["trial"]]["test_top1"] == top["test_top1"]
