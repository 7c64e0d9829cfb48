"""The `vitlab` command: init, run, sweep, train, report, results, next, export, models."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from vitlab import PROJECT_ROOT
from vitlab.run import signals, tracking
from vitlab.run.config import ConfigError
from vitlab.study import results
from vitlab.study.plans import SweepError

DIR_HELP = "results directory (default: reports/results in the project)"
LOG_HELP = "log each run to tensorboard, wandb, mlflow (comma-separated) or all, into DIR/logs"


def _results_dir(args) -> Path:
    return Path(args.results).resolve() if args.results else results.DEFAULT_DIR


def cmd_sweep(args, render_report: bool = False) -> int:
    from vitlab.study import plans

    plan = plans.load_plan(args.params)  # validates every run before anything trains (and before torch loads)
    if args.set:
        plan = plans.override(plan, _set_values(args.set))
    shard = plans.parse_shard(args.shard) if args.shard else (0, 1)
    if args.workers < 1:
        raise SweepError(f"--workers: {args.workers} must be >= 1")
    log_with = tracking.parse(args.log_with)  # an unknown or missing tracker, before anything trains
    if args.dry_run:
        from vitlab.study import cost

        return cost.dry_run(plan, plans.shard(plan.runs, *shard), args.workers, _results_dir(args))
    from vitlab.study import sweep

    out = _results_dir(args)
    mine = plans.shard(plan.runs, *shard)
    recorded = sum(results.read_record(out, cfg.run_id, "ignore") is not None for cfg in mine)
    print(f"{plan.name}: {len(plan.runs)} runs into {out}"
          + (f", shard {args.shard}: {len(mine)} of them" if args.shard else "")
          + (f"; {recorded} of {len(mine)} already recorded" if recorded else ""),
          file=sys.stderr)
    counts = sweep.run_sweep(plan, out, retry_failed=args.retry_failed, fail_fast=args.fail_fast,
                             shard_spec=shard, workers=args.workers, fresh_kernels=args.fresh_kernels,
                             checkpoint_every=args.checkpoint_every, log_with=log_with)
    print(", ".join(f"{n} {k}" for k, n in counts.items() if n), file=sys.stderr)
    if render_report:
        from vitlab.report import render

        print(f"report: {render.render(out)}", file=sys.stderr)
    return 1 if counts.get("failed") else 0


def _set_values(items: list[str]) -> dict:
    """--set FIELD=VALUE arguments as config values (VALUE read as YAML: 6, 1e-3, null, true)."""
    import yaml

    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep:
            raise SweepError(f"--set: {item!r} must be FIELD=VALUE, e.g. depth=6")
        values[key.strip()] = yaml.safe_load(text)
    return values


def cmd_train(args) -> int:
    """One run in this process; under `accelerate launch` every process trains its share. A
    scheduler's warning from the start (while torch imports, say) stops it at its first step."""
    with signals.caught():
        return _train(args)


def _train(args) -> int:
    from vitlab.run.config import RunConfig
    from vitlab.study import results, runner
    try:
        cfg = RunConfig.from_dict(_set_values(args.set))
    except ConfigError as e:
        raise SweepError(f"--set {e}") from None
    out = _results_dir(args)
    result, record = runner.run(cfg, out, progress=not args.quiet, checkpoint_every=args.checkpoint_every,
                                log_with=tracking.parse(args.log_with))
    if record is not None:  # process 0's
        if args.json:
            print(json.dumps({"run_id": cfg.run_id, "status": result.status, "val_accuracy": result.val_accuracy,
                              "test_accuracy": result.test_accuracy,
                              "train_loss": result.train_loss, "train_steps": result.train_steps,
                              "history": [{k: h[k] for k in ("epoch", "train_loss", "train_accuracy")}
                                          for h in result.history]}))
        else:
            print(_summary(record) + f"\nrecorded: {results.record_path(out, cfg.run_id)}")
    return 0 if result.status == "ok" else 1


def _summary(record: dict) -> str:
    """A finished run in one line: its outcome, both accuracies (named), loss and cost."""
    loss = f"  loss={record['train_loss']:.3f}" if record.get("train_loss") is not None else ""
    return (f"{record['run_id']} {record['status']}  {results.accuracies(record)}{loss}  {record['train_steps']} steps, "
            f"{record['wall_time_s']:.1f} s, {record['images_per_s']:.0f} images/s")


def cmd_report(args) -> int:
    from vitlab.report import render

    print(render.render(args.results_dir, show_code=args.show_code))
    return 0


def cmd_results(args) -> int:
    if not results.runs_dir(args.results_dir).is_dir():
        raise SweepError(f"{args.results_dir}: no runs/ folder here; run a sweep into it first")
    df = results.load_table(args.results_dir)
    fmt = args.format or ("table" if sys.stdout.isatty() and not args.output else "csv")
    if fmt == "table":
        if args.output:
            raise SweepError("--format table: for reading in a terminal; use csv, json or parquet with --output")
        print(results.terminal_table(df) if len(df) else "no runs recorded yet")
        return 0
    args.format = fmt
    if args.format == "parquet":
        if not args.output:
            raise SweepError("--format parquet: needs --output FILE (parquet is binary)")
        results.export(df, "parquet", args.output)
    elif args.output:
        results.export(df, args.format, args.output)
    else:  # per-image answers are for the statistics, not for reading
        sys.stdout.write(results.export(df.drop(columns=["test_correct", "history"], errors="ignore"), args.format))
        sys.stdout.write("\n" if args.format == "json" else "")
    return 0


def cmd_init(args) -> int:
    """Write a new workbook into a folder and say what to run there."""
    from vitlab.study import workbook

    written, kept = workbook.init(args.directory)
    print(f"vitlab init: {Path(args.directory).resolve()}: notebooks/, params/, reports/ ({len(written)} files written"
          + (f", {len(kept)} already there and kept)" if kept else ")"))
    print(f"next: cd {args.directory} && vitlab run params/quickstart.yaml")
    return 0


def cmd_export(args) -> int:
    """Write a recorded run's weights where timm (or vitlab) loads them, and print its card."""
    from vitlab.study import export

    print(export.export(_results_dir(args), args.run_id, args.out_dir).read_text())
    return 0


def cmd_next(args) -> int:
    """Write (and print) a params file of what to run next, from the runs in a results directory."""
    out = Path(args.results_dir).resolve()
    if not results.runs_dir(out).is_dir():
        raise SweepError(f"{out}: no runs/ folder here; run a sweep into it first")
    if args.budget is not None and args.budget <= 0:
        raise SweepError(f"--budget: training FLOPs must be > 0, got {args.budget:g}")
    from vitlab.report import advice, outline

    runs = outline.Runs.load(out)
    try:
        text = advice.next_params(out, runs.ledger, runs.star, args.budget)
    except ValueError as e:
        raise SweepError(str(e)) from None
    from vitlab.run.files import write_text

    path = write_text(out / "next.yaml", text)
    print(text, end="")
    print(f"written: {path} (check it: vitlab sweep {path} --results {out} --dry-run)", file=sys.stderr)
    return 0


def cmd_models(args) -> int:
    from vitlab.run import presets

    rows = presets.table()
    if args.format == "json":
        print(json.dumps(rows, indent=1))
    else:
        print(_columns(rows))
    return 0


def _columns(rows: list[dict]) -> str:
    """Rows as a plain right-aligned text table ("-" for none). By hand: pandas alone takes
    seconds to import, longer than the command should take."""
    cells = [list(rows[0])] + [["-" if v is None else str(v) for v in row.values()] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vitlab", description="Vision Transformer scaling studies.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", help="make a new workbook (notebooks/, params/, reports/) in a folder, to run vitlab in")
    p.add_argument("directory", help="the folder (made if missing; files already there are kept)")
    p.set_defaults(func=cmd_init)

    for name, helptext in (("run", "run a sweep, then render its report (the main job)"),
                           ("sweep", "run each run of a params file through notebooks/train.ipynb")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("params", help="params YAML file, e.g. params/quickstart.yaml")
        p.add_argument("--results", help=DIR_HELP)
        p.add_argument("--retry-failed", action="store_true", help="rerun runs recorded as failed")
        p.add_argument("--fail-fast", action="store_true", help="stop at the first failed run")
        p.add_argument("--dry-run", action="store_true",
                       help="validate and print the plan with params, FLOPs and estimated time; train nothing")
        p.add_argument("--shard", metavar="I/N",
                       help="run only the I-th of N disjoint slices (I from 0, as a SLURM array task id)")
        p.add_argument("--workers", type=int, default=1, metavar="K",
                       help="run K notebooks at once (one GPU each when there are several)")
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="set a field on every run, e.g. --set steps=3 (runs that become one run once)")
        p.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                       help="checkpoint each run every STEPS steps (default: every 10 minutes); a rerun resumes")
        p.add_argument("--log-with", metavar="TRACKERS", help=LOG_HELP)
        p.add_argument("--fresh-kernels", action="store_true",
                       help="start a new kernel for every run (default: reuse one, namespace cleared)")
        p.set_defaults(func=lambda a, report=name == "run": cmd_sweep(a, render_report=report))

    p = sub.add_parser("train", help="train one run here (also under `accelerate launch`) and record it")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="a config field, e.g. --set depth=6 --set patch_size=4 (others: the defaults)")
    p.add_argument("--results", help=DIR_HELP)
    p.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                   help="checkpoint every STEPS steps (default: every 10 minutes); a rerun resumes")
    p.add_argument("--log-with", metavar="TRACKERS", help=LOG_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true",
                   help="end with one JSON object (outcome, accuracies, per-epoch loss) instead of a summary line")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("report", help="render notebooks/report.ipynb on a results directory to HTML")
    p.add_argument("results_dir", nargs="?", default=results.DEFAULT_DIR, help=DIR_HELP)
    p.add_argument("--show-code", action="store_true", help="keep code cells in the HTML")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="print the collected results, one row per run")
    p.add_argument("results_dir", nargs="?", default=results.DEFAULT_DIR, help=DIR_HELP)
    p.add_argument("--format", choices=("table", *results.FORMATS),
                   help="table (the default in a terminal: the fields that vary, sorted) or csv (the default "
                        "in a pipe), json, parquet (every field)")
    p.add_argument("--output", help="write to this file instead of standard output")
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("next", help="write a params file of what to run next: the recommended shape at a budget "
                                    "and the seeds that would decide each undecided claim")
    p.add_argument("results_dir", nargs="?", default=results.DEFAULT_DIR, help=DIR_HELP)
    p.add_argument("--budget", type=float, metavar="FLOPS",
                   help="training FLOPs for the recommended shape (default: 10x the star sweep's largest run)")
    p.set_defaults(func=cmd_next)

    p = sub.add_parser("export", help="write a run's weights as model.safetensors with timm's config.json, "
                                      "a params file that reproduces it and a model card")
    p.add_argument("run_id", help="a recorded run's id (vitlab results lists them)")
    p.add_argument("out_dir", help="folder to write into (made if missing)")
    p.add_argument("--results", help=DIR_HELP)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="list the model presets: shape, params, forward GFLOPs per image")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The kernels a sweep or report starts run in the notebooks' folder: they take this workbook.
    os.environ.setdefault("VITLAB_HOME", str(PROJECT_ROOT))
    with warnings.catch_warnings():
        # A damaged record skipped or set aside: one line, not a warning's source location.
        warnings.showwarning = lambda message, category, *rest, **kw: print(
            f"vitlab {args.command}: {message}", file=sys.stderr)
        warnings.simplefilter("always", results.DamagedRecordWarning)
        return _run(args)


def _run(args) -> int:
    try:
        return args.func(args)
    except (SweepError, ConfigError, FileNotFoundError) as e:  # one line, no traceback
        print(f"vitlab {args.command}: {e}", file=sys.stderr)
        return 2
    except signals.Stopped as e:  # a scheduler's signal: the checkpoint is saved, a requeued job resumes
        print(f"vitlab {args.command}: stopped by {e}", file=sys.stderr)
        return signals.EXIT_STOPPED
    except BrokenPipeError:  # the reader stopped early (`vitlab results | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"vitlab {args.command}: interrupted; finished runs are kept, rerun to go on", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
