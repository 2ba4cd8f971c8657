"""``salesops forecast backtest``: replay the Maven CRM sample and score every forecast
method against the baselines (a Markdown report and a PNG chart)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from salesops_cli.maven import DATA_DIR

PERIODS = ("month", "week")


def cmd_backtest(args: argparse.Namespace) -> int:
    from salesops_forecast.backtest.run import run_backtest

    kinds = args.periods or list(PERIODS)
    options = ["--out", args.out, "--holdout-from", args.holdout_from]
    options += [f"--period={kind}" for kind in args.periods or ()]
    if args.data != str(DATA_DIR):
        options += ["--data", args.data]
    command = shlex.join(["salesops", "forecast", "backtest", *options])
    result = run_backtest(
        data_dir=Path(args.data),
        out_dir=Path(args.out),
        kinds=kinds,
        holdout_from=args.holdout_from,
        command=command,
        progress=(lambda line: print(line, file=sys.stderr)) if args.verbose else lambda _: None,
    )
    print(f"report: {result.report}")
    print(f"chart: {result.chart}")
    if result.target is not None:
        t = result.target
        verdict = "met" if t.met else "missed"
        print(
            f"company monthly WAPE: blend {t.blend:.1%}, best baseline {t.baseline} "
            f"{t.baseline_wape:.1%} (reduction {t.reduction:.1%}, target 30%: {verdict})"
        )
    return 0


def add_forecast_commands(sub: Any) -> None:
    forecast = sub.add_parser("forecast", help="forecast tools")
    commands = forecast.add_subparsers(dest="forecast_command", required=True)
    backtest = commands.add_parser(
        "backtest",
        help="replay the Maven CRM sample by month and week and score every method",
    )
    backtest.add_argument("--data", default=str(DATA_DIR), help="Maven CSV directory")
    backtest.add_argument("--out", default="forecast-backtest", help="output directory")
    backtest.add_argument(
        "--period", dest="periods", action="append", choices=PERIODS, help="(default: both)"
    )
    backtest.add_argument(
        "--holdout-from",
        default="2017-09-01",
        help="deal probabilities: fit on deals closed before, score those closed after",
    )
    backtest.add_argument("--verbose", action="store_true", help="print each origin")
    backtest.set_defaults(func=cmd_backtest)
