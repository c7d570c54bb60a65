"""The CLI explains itself: every option has help with its default, `convnet train` has a flag
for every TrainConfig field (help, units, choices, range), range errors are one line, and
`--help` starts without importing torch."""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from convnet.cli import build_parser as _build_parser
from convnet.train.config import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig


@functools.cache
def build_parser() -> argparse.ArgumentParser:
    """One parser for the module (building all eleven commands' parsers takes ~0.1 s)."""
    return _build_parser()


def _parsers(parser: argparse.ArgumentParser, name: str = "convnet"):
    """(command name, parser) for the top level and every subcommand, nested ones too."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def _options():
    """(command, action) for every argument a user can give, positionals included."""
    skip = (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, skip):
                yield name, action


def _label(command: str, action: argparse.Action) -> str:
    return f"{command} {'/'.join(action.option_strings) or action.metavar or action.dest}"


def _spellings(value) -> set[str]:
    """Ways a help text may write a default: 0.5, 1 for 1.0, '30 60 90' or '30,60,90' for lists."""
    if isinstance(value, list | tuple):
        items = [min(_spellings(v), key=len) for v in value]
        return {sep.join(items) for sep in (" ", ",", ", ")}
    out = {str(value)}
    if isinstance(value, float) and value.is_integer():
        out.add(str(int(value)))
    return out


def test_every_option_has_help_that_names_its_default():
    missing, undocumented = [], []
    for command, action in _options():
        if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
            missing.append(_label(command, action))
            continue
        default = action.default
        takes_value = action.nargs != 0  # store_true/false and friends imply their default
        if takes_value and default not in (None, False, argparse.SUPPRESS, []):
            if not any(s in action.help for s in _spellings(default)):
                undocumented.append(f"{_label(command, action)} (default {default!r})")
    assert not missing, f"options without help: {missing}"
    assert not undocumented, f"help that does not give the default: {undocumented}"


def _train_parser() -> argparse.ArgumentParser:
    return dict(_parsers(build_parser()))["convnet train"]


def _sample(f: dataclasses.Field) -> tuple[list[str], object]:
    """Command-line words for a valid value of field ``f`` other than its default, and the value."""
    default = f.default
    if isinstance(default, bool):
        return [], not default
    if default == ():  # names (--freeze): one given
        return ["layer1"], ("layer1",)
    if isinstance(default, tuple):
        value = tuple(v / 2 for v in default)
        return [str(v) for v in value], value
    if f.name in ("optimizer", "schedule", "precision"):
        value = {"optimizer": "adamw", "schedule": "step", "precision": "fp32"}[f.name]
        return [value], value
    if isinstance(default, str) or default is None:
        value = "cpu" if f.name == "device" else "runs/somewhere"
        return [value], value
    value = type(default)(default + 1) if f.name != "onecycle_pct" else 0.5
    return [str(value)], value


@pytest.mark.parametrize("f", dataclasses.fields(TrainConfig), ids=lambda f: f.name)
def test_every_train_config_field_has_a_flag_named_after_it(f):
    parser = build_parser()
    flag = "--" + f.name.replace("_", "-")
    words, value = _sample(f)
    if isinstance(f.default, bool):
        flag = flag if value else "--no-" + flag[2:]
    args = parser.parse_args(["train", "lenet5", flag, *words])
    got = getattr(args, f.name)
    assert (tuple(got) if isinstance(got, list) else got) == value
    # and the flag's help says what the field's default is
    action = next(a for a in _train_parser()._actions if a.dest == f.name and a.help)
    if f.name != "out":  # the CLI writes runs/MODEL; TrainConfig's None means "no files"
        m = re.search(r"plain: (.+?)\)\.$", action.help) or re.search(
            r"Default: (.+?)\.$", action.help
        )
        assert m, action.help
        shown = m.group(1)
        if isinstance(f.default, bool):
            assert shown == ("on" if f.default else "off")
        elif f.default is None or f.default == ():
            assert shown == "none"
        elif isinstance(f.default, tuple):
            assert tuple(float(v) for v in shown.split()) == f.default
        elif isinstance(f.default, str):
            assert shown == f.default
        else:
            assert float(shown) == f.default


def test_todays_flag_names_still_work():
    args = build_parser().parse_args(
        ["train", "lenet5", "--batch", "7", "--threads", "2", "--quiet", "-o", "runs/x"]
    )
    assert (args.batch_size, args.num_threads, args.progress, args.out) == (7, 2, False, "runs/x")
    # a flag not given overrides nothing: the recipe (or the resumed run) keeps its value
    args = build_parser().parse_args(["train", "lenet5"])
    assert all(getattr(args, f.name) is None for f in dataclasses.fields(TrainConfig))


def test_train_help_shows_choices_units_and_ranges(capsys):
    from convnet.cli import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    text = re.sub(r"\s+", " ", capsys.readouterr().out)
    for flag, choices in (
        ("--optimizer", OPTIMIZERS),
        ("--schedule", SCHEDULES),
        ("--precision", PRECISIONS),
    ):
        assert f"{flag} {{{','.join(choices)}}}" in text
    assert "--epochs EPOCHS passes over the training set. Units: epochs. Range: 1..100000." in text
    assert "Range: 0..2**63-1" in text  # --seed
    assert f"0..4 x cores (= {4 * (os.cpu_count() or 1)})" in text  # --threads


CORES = os.cpu_count() or 1


@pytest.mark.parametrize(
    "flag, value, expected",
    [
        ("--batch", "0", "--batch 0: must be >= 1"),
        ("--epochs", "0", "--epochs 0: must be in 1..100000"),
        ("--epochs", "100001", "--epochs 100001: must be in 1..100000"),
        ("--seed", "-1", "--seed -1: must be in 0..2**63-1"),
        ("--seed", str(2**63), f"--seed {2**63}: must be in 0..2**63-1"),
        ("--threads", str(4 * CORES + 1), f"--threads {4 * CORES + 1}: must be in 0..4 x cores"),
        ("--momentum", "1", "--momentum 1: must be in [0, 1)"),
        ("--lr", "0", "--lr 0: must be > 0"),
        ("--onecycle-pct", "1", "--onecycle-pct 1: must be in (0, 1)"),
    ],
)
def test_a_value_out_of_range_is_one_line_naming_flag_value_and_range(
    cli, tmp_path, flag, value, expected
):
    code, out, err = cli("train", "lenet5", "--out", tmp_path / "run", flag, value)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"convnet train: error: {expected}"), lines[0]
    assert lines[0].endswith(")")  # the reason, in parentheses
    assert not (tmp_path / "run").exists()


def test_a_tuple_and_a_cross_field_error_name_the_flag(cli, tmp_path):
    code, _, err = cli("train", "lenet5", "--out", tmp_path, "--betas", "0.9", "1")
    assert code == 2 and err.startswith("convnet train: error: --betas 0.9 1: must be in [0, 1)")
    code, _, err = cli("train", "lenet5", "--out", tmp_path, "--batch", "10", "--nproc", "3")
    assert code == 2 and "--batch 10: must be divisible by nproc=3" in err


def test_python_users_get_the_same_check_with_the_field_name():
    from convnet.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^training config: epochs=0: must be in 1\.\.100000"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"^training config: milestones=\(10\.0, -1\.0\)"):
        TrainConfig(milestones=(10, -1))


def test_an_argparse_mistake_is_one_line(cli):
    import contextlib
    import io

    err = io.StringIO()
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(err):
        build_parser().parse_args(["train", "lenet5", "--optimizer", "adam"])
    assert e.value.code == 2
    assert err.getvalue().count("\n") == 1 and "invalid choice: 'adam'" in err.getvalue()


@pytest.mark.parametrize("command", ["train", "surgery", "report"])
def test_out_is_o_out_and_output_wherever_a_command_writes_a_file(command):
    options = {s for c, a in _options() if c == f"convnet {command}" for s in a.option_strings}
    assert {"-o", "--out", "--output"} <= options


def test_help_imports_no_torch_numpy_or_matplotlib():
    """`convnet --help` and every subcommand's --help, in a fresh interpreter."""
    code = """
import contextlib, io, sys
from convnet.cli import build_parser, main
commands = [[]]
parser = build_parser()
for a in parser._actions:
    if hasattr(a, "choices") and isinstance(a.choices, dict):
        commands += [[c] for c in a.choices]
for argv in commands:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main([*argv, "--help"])
        except SystemExit:
            pass
print(" ".join(m for m in ("torch", "numpy", "matplotlib", "PIL", "rich") if m in sys.modules))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == ""


@given(st.integers(-(2**40), 2**40), st.integers(-3, 3))
def test_whole_number_accepts_exactly_the_numbers_at_or_above_its_bound(n, lo):
    from convnet.cli._args import whole_number

    parse = whole_number(lo, "things")
    if n >= lo:
        assert parse(str(n)) == n
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=rf"must be >= {lo} \(things\)"):
            parse(str(n))


@given(st.floats(allow_nan=True, allow_infinity=False, width=32))
def test_positive_number_accepts_exactly_the_numbers_above_zero(x):
    from convnet.cli._args import positive_number

    parse = positive_number("a factor")
    if x > 0:
        assert parse(repr(x)) == x
    else:
        with pytest.raises(argparse.ArgumentTypeError, match=r"must be > 0 \(a factor\)"):
            parse(repr(x))


def test_flags_mean_the_same_in_every_command():
    report_formats = {"text", "markdown", "json", "csv"}
    seen = set()
    for command, action in _options():
        if "--format" in action.option_strings and not command.startswith("convnet viz"):
            # (viz --format names the figure's file formats: png, svg, pdf)
            assert set(action.choices) <= report_formats and action.default == "text", command
            seen.add(command)
        if "--batch" in action.option_strings:
            assert action.metavar == "IMAGES" and "images per" in action.help, command
    assert {"convnet summary", "convnet models", "convnet eval"} <= seen
    parser = build_parser()
    assert parser.parse_args(["summary", "vgg16", "--format", "table"]).format == "text"
    assert parser.parse_args(["eval", "runs/x", "--json"]).format == "json"


def test_resume_checks_the_saved_config_with_the_flags_given(cli, tmp_path):
    """A saved value this machine refuses names its flag, and that flag mends it."""
    import json

    saved = TrainConfig(out=str(tmp_path)).to_dict()
    saved["num_threads"] = 4 * CORES + 1  # saved on a machine with more cores
    (tmp_path / "config.json").write_text(json.dumps(saved))
    code, _, err = cli("train", "lenet5", "--out", tmp_path, "--resume")
    assert code == 2 and f"--threads {4 * CORES + 1}: must be in 0..4 x cores" in err
    # with --threads the config passes; the next mistake (--epochs 0) is the one reported
    code, _, err = cli(
        "train", "lenet5", "--out", tmp_path, "--resume", "--threads", "1", "--epochs", "0"
    )
    assert code == 2 and "--epochs 0: must be in 1..100000" in err


def _commands(parser: argparse.ArgumentParser) -> list[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


@pytest.mark.parametrize("command", _commands(_build_parser()))
def test_one_command_parser_is_the_whole_parsers_part(command):
    """`convnet CMD ...` registers CMD alone (a fast start); its options are the full parser's."""
    from convnet.cli import OWNER

    alone = _build_parser(command)
    mine = [c for c in _commands(_build_parser()) if OWNER.get(c, c) == OWNER.get(command, command)]
    assert _commands(alone) == mine
    whole = dict(_parsers(build_parser()))
    for name, parser in _parsers(alone):
        if name != "convnet":
            assert [a.option_strings for a in parser._actions] == [
                a.option_strings for a in whole[name]._actions
            ]


def test_an_unknown_command_still_lists_every_command(capsys):
    from convnet.cli import main

    with pytest.raises(SystemExit) as e:
        main(["sumary", "vgg16"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice" in err and all(f"'{c}'" in err for c in _commands(build_parser()))
