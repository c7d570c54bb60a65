"""``convnet search``: architecture search over the pattern language or NASNet's cells."""

from __future__ import annotations

from ._args import positive_number, whole_number

SPACES = ("pattern", "nasnet")
CONTROLLERS = ("reinforce", "random", "tpe", "nsga2")
OBJECTIVES = ("val", "val-macs")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "search",
        help="search architectures: a controller writes networks, each trains, validation scores it",
        description="Sample networks from a search space with a controller, train each briefly "
        "on the training split, reward it with its validation top-1 (the test split is never "
        "read), keep the study in Optuna's storage, then retrain the best lines with the full "
        "recipe and score them on test once. Needs Optuna: pip install 'convnet[search]'.",
    )
    _what_options(p.add_argument)
    _budget_options(p.add_argument)
    _run_options(p.add_argument)
    p.set_defaults(func=_search, writes={"out": "folder"})


def _what_options(add) -> None:
    """What is searched: the space, the controller, the data and the objective."""
    add(
        "--space",
        choices=SPACES,
        default="pattern",
        help="pattern: the notes' INPUT -> [[CONV -> RELU]*N -> POOL?]*M -> [FC -> RELU]*K -> FC "
        "(N <= 3, M <= 3, K < 3, per-layer F, filters, stride); nasnet: NASNet's normal and "
        "reduction cells of 2 blocks (default: pattern)",
    )
    add(
        "--controller",
        choices=CONTROLLERS,
        default="reinforce",
        help="reinforce: an LSTM policy trained with REINFORCE; random, tpe, nsga2: Optuna's "
        "samplers (default: reinforce)",
    )
    add(
        "--data",
        default="mnist-sample",
        help="data set name or path, as convnet train takes it (default: mnist-sample)",
    )
    add(
        "--objective",
        choices=OBJECTIVES,
        default="val",
        help="val: maximize validation top-1; val-macs: also minimize multiply-adds (two "
        "objectives for random/tpe/nsga2; MnasNet's acc*(MACs/target)^-0.07 for reinforce) "
        "(default: val)",
    )
    add(
        "--macs-target",
        type=whole_number(1, "multiply-adds"),
        default=416_520,
        help="MACs above which reinforce's val-macs reward shrinks, and the reference line in "
        "pareto.png (default: 416520, LeNet-5's)",
    )
    add(
        "--max-macs",
        type=whole_number(1, "multiply-adds"),
        default=None,
        help="reject children with more multiply-adds than this before training them, counted "
        "as over_macs (a hard limit; default: none)",
    )


def _budget_options(add) -> None:
    """How much is spent: trials or wall time, and each child's training."""
    add(
        "--trials",
        type=whole_number(1, "trained children"),
        default=None,
        help="valid children to train, 1..100000; invalid samples are rejected and not "
        "counted (default: 20 when no --budget is given)",
    )
    add(
        "--budget",
        default=None,
        metavar="TIME",
        help="wall time for starting children: 90s, 10m, 1.5h or seconds, up to 30 days; with "
        "--trials, whichever ends first (default: none)",
    )
    add(
        "--child-epochs",
        type=whole_number(1, "epochs per child"),
        default=1,
        help="epochs each child trains, 1..1000; with --pruner asha, the most it may train "
        "(default: 1)",
    )
    add(
        "--pruner",
        choices=("none", "asha"),
        default="none",
        help="asha: successive halving (Optuna's) stops a child after 1, 3, 9, ... epochs unless "
        "its validation top-1 is in the best third at that epoch; needs --objective val "
        "(default: none)",
    )
    add(
        "--child-images",
        type=whole_number(0, "training images per child"),
        default=0,
        help="training images each child sees, a seeded subset; 0: all (default: 0)",
    )


def _run_options(add) -> None:
    """Where the study lives, who works on it, and the final retraining."""
    add("--out", default="runs/search", help="run folder (default: runs/search)")
    add(
        "--resume",
        action="store_true",
        help="continue the search in --out: interrupted children are trained again, none twice "
        "(default: off)",
    )
    add(
        "--workers",
        type=whole_number(1, "worker processes"),
        default=1,
        help="worker processes on this machine sharing the study, 1..256 (default: 1)",
    )
    add(
        "--storage",
        default=None,
        metavar="URL",
        help="Optuna RDB storage, e.g. postgresql://USER:PASS@HOST/DB to share one study across "
        "machines (default: sqlite:///OUT/study.db)",
    )
    add("--seed", type=whole_number(0, "random seed"), default=0, help="random seed (default: 0)")
    add(
        "--val-split",
        type=positive_number("share of the training split"),
        default=0.1,
        help="share of the training split that validates the children, in (0, 1), unless the "
        "data has its own validation split (default: 0.1)",
    )
    add(
        "--top-k",
        type=whole_number(0, "lines to retrain"),
        default=1,
        help="best distinct lines retrained with --recipe and scored on test once; the one "
        "with the best validation top-1 after retraining is the chosen net, 0..100 (default: 1)",
    )
    add(
        "--recipe",
        default="lenet",
        help="training recipe of children and retraining (default: lenet)",
    )
    add(
        "--final-epochs",
        type=whole_number(1, "epochs"),
        default=None,
        help="epochs of the retraining (default: the recipe's)",
    )
    add(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar or leaderboard table (default: shown)",
    )


def _search(args) -> int:
    from ..search import run

    trials = args.trials if args.trials is not None or args.budget else 20
    result = run(
        args.space, args.controller, args.data, trials=trials, budget=args.budget,
        child_epochs=args.child_epochs, child_images=args.child_images, pruner=args.pruner,
        objective=args.objective,
        out=args.out, resume=args.resume, workers=args.workers, storage=args.storage,
        seed=args.seed, val_split=args.val_split, top_k=args.top_k, recipe=args.recipe,
        final_epochs=args.final_epochs, macs_target=args.macs_target, max_macs=args.max_macs,
        progress=args.progress,
    )  # fmt: skip
    print(
        f"leaderboard: {result['out']}/leaderboard.csv, .json; figure: {result['out']}/pareto.png"
    )
    return 0
