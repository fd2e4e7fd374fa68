"""Entry point ``optai-tui``: no arguments opens the TUI; subcommands do headless work.

Exit codes: 0 done, 2 invalid input (one clear message, no traceback), 1 failure during training,
130 stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from . import __version__
from .errors import ConfigError, OptaiError, TrainingError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_STOPPED = 0, 1, 2, 130


def _table_console() -> Console:
    """Standard output for a table: the terminal's width, or whole rows in a pipe or a file (for grep)."""
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=1000)


def _err_console() -> Console:
    """Standard error for a message: the terminal's width, or whole lines in a log file or a pipe (a path or
    a command cut in two by wrapping cannot be found with grep, nor pasted)."""
    err = Console(stderr=True, highlight=False)
    return err if err.is_terminal else Console(stderr=True, highlight=False, width=1000)


def print_error(err: OptaiError) -> None:
    """The error as a short red panel: its headline, the hint dimmed under it (text, never markup). Best
    effort: a terminal that went away loses it, nothing else."""
    text = Text(err.headline())
    if err.hint:
        text.append("\n" + err.hint, style="dim")
    title = "invalid input" if err.exit_code == EXIT_INVALID else "error"
    try:
        _err_console().print(Panel(text, title=title, border_style="red", expand=False))
    except (OSError, ValueError):
        pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's usage errors: one line, exit 2
        raise ConfigError(f"{self.prog}: {message}", hint=f"see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="optai-tui", description="Train image classifiers from the terminal. No command: open the TUI.")
    p.add_argument("--version", action="version", version=f"optai-tui {__version__}")
    p.add_argument("--runs-dir", help="runs directory (default: ./runs or $OPTAI_RUNS_DIR)")
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", dest="sub_runs_dir", metavar="RUNS_DIR", help="runs directory (default: ./runs or $OPTAI_RUNS_DIR)")

    t = sub.add_parser("train", parents=[common], help="train headless (no --preset: the offline default preset)")
    t.add_argument("--preset", "-p", help="preset name or YAML file")
    t.add_argument("--set", "-s", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a setting, e.g. optim.lr=0.05 (repeatable)")
    t.add_argument("--resume", metavar="RUN", help="continue RUN (id, prefix or folder) from its last completed epoch")
    t.add_argument("--run-dir", help=argparse.SUPPRESS)  # an already created run folder (used by the TUI)
    t.add_argument("--plain", action="store_true", help="one plain line per epoch even on a terminal")

    ps = sub.add_parser("presets", help="list, show or validate presets")
    pss = ps.add_subparsers(dest="action", parser_class=_Parser)
    pss.add_parser("list", help="list shipped and user presets")
    sh = pss.add_parser("show", help="print a preset's resolved config")
    sh.add_argument("name")
    va = pss.add_parser("validate", help="validate presets (default: all)")
    va.add_argument("names", nargs="*")

    rs = sub.add_parser("runs", help="list runs")
    rss = rs.add_subparsers(dest="action", parser_class=_Parser)
    rl = rss.add_parser("list", parents=[common], help="list runs in the runs directory")
    rl.add_argument("--json", action="store_true", help="print JSON (one object per run)")

    pr = sub.add_parser("profile", help="parameters, MACs, size and speed of an architecture")
    pr.add_argument("arch")
    pr.add_argument("--num-classes", type=int, default=10)
    pr.add_argument("--in-channels", type=int, default=3)
    pr.add_argument("--image-size", type=int, default=None)
    pr.add_argument("--width", type=float, default=1.0)
    pr.add_argument("--device", default="cpu")
    pr.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto", help="of the training steps (as train.precision)")
    pr.add_argument("--channels-last", action="store_true", help="train in channels-last memory format")
    pr.add_argument("--batch-size", type=int, default=256, help="batch of the throughput measurements")
    pr.add_argument("--json", action="store_true")

    sub.add_parser("doctor", parents=[common], help="check torch, CUDA, GPUs, MPS, data root and weight cache")

    at = sub.add_parser("attach", parents=[common], help="open the TUI dashboard on a run")
    at.add_argument("run")

    ex = sub.add_parser("export", parents=[common], help="export run summaries (md, csv, json, html)")
    ex.add_argument("runs", nargs="+", metavar="RUN")
    ex.add_argument("--format", "-f", choices=["md", "csv", "json", "html"], default=None, help="default: from the file's extension")
    ex.add_argument("-o", "--output", required=True, help="output file")
    ex.add_argument("--per-epoch", action="store_true", help="csv/json: one row per epoch")
    ex.add_argument("--force", action="store_true", help="replace an existing file that is not a previous export")

    ev_ = sub.add_parser("evaluate", parents=[common], help="judge a run's best checkpoint: accuracy, per-class metrics, confusion matrix")
    ev_.add_argument("run", metavar="RUN")
    ev_.add_argument("--data", metavar="PATH", help="a folder of class sub-folders (or holding test/ or val/); default: the run's validation images")
    ev_.add_argument("--worst", type=int, default=10, metavar="N", help="misclassified images listed (a folder only; default 10)")
    ev_.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    ev_.add_argument("--json", action="store_true", help="print JSON")
    pd = sub.add_parser("predict", parents=[common], help="class and probability of image files from a run's best checkpoint")
    pd.add_argument("run", metavar="RUN")
    pd.add_argument("images", nargs="+", metavar="IMAGE")
    pd.add_argument("--top-k", type=int, default=1, metavar="K", help="the K most likely classes per image (default 1)")
    pd.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    pd.add_argument("--json", action="store_true", help="print JSON (one object per image, in a list)")
    em = sub.add_parser("export-model", parents=[common], help="the run's best model as ONNX or TorchScript, for deployment")
    em.add_argument("run", metavar="RUN")
    em.add_argument("--format", "-f", choices=["onnx", "torchscript"], required=True)
    em.add_argument("-o", "--output", required=True, help="output file")
    em.add_argument("--force", action="store_true", help="replace an existing file that is not an export")

    sw = sub.add_parser("sweep", help="hyperparameter search (Optuna): run, join, list, show, export, stop")
    sws = sw.add_subparsers(dest="action", parser_class=_Parser)
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument("--storage", metavar="URL", help="postgresql://USER@HOST:PORT/DB or sqlite:///FILE (default: embedded in the sweep's folder; or $OPTAI_SWEEP_STORAGE)")
    sr = sws.add_parser("run", parents=[common, storage], help="start a sweep from a spec (or continue the sweep of that name)")
    sr.add_argument("spec", help="sweep spec: a YAML file, or the name of a shipped example")
    sr.add_argument("--name", help="the sweep's name (default: the spec's name:, else the file's name)")
    sr.add_argument("--n-trials", type=int, metavar="N", help="trials in all (replaces the spec's n_trials)")
    sr.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this long (replaces the spec's timeout)")
    sr.add_argument("--gpus", metavar="LIST", help="one trial at a time on each GPU: 0,1,2,3 or all (default: one trial at a time on train.device)")
    sr.add_argument("--retry-lost", type=int, metavar="N", help="run the parameters of a trial whose worker died again, up to N times")
    sj = sws.add_parser("join", parents=[common, storage], help="work on an existing sweep (another machine: --storage)")
    sj.add_argument("name")
    sj.add_argument("--timeout", type=float, metavar="SECONDS", help="start no trial after this long")
    sj.add_argument("--gpus", metavar="LIST", help="one trial at a time on each GPU: 0,1,2,3 or all")
    sj.add_argument("--device", help="train.device for this worker's trials (default: the spec's)")
    sj.add_argument("--retry-lost", type=int, metavar="N", help="run the parameters of a trial whose worker died again, up to N times")
    sj.add_argument("--label", help=argparse.SUPPRESS)  # a worker process of `sweep run --gpus`
    sl = sws.add_parser("list", parents=[common], help="the sweeps in the runs directory")
    sl.add_argument("--json", action="store_true", help="print JSON (one object per sweep)")
    ss = sws.add_parser("show", parents=[common, storage], help="a sweep's trials, best trials and parameter importances")
    ss.add_argument("name")
    ss.add_argument("--json", action="store_true", help="print JSON")
    se = sws.add_parser("export", parents=[common, storage], help="a sweep report (md, html, csv, json)")
    se.add_argument("name")
    se.add_argument("--format", "-f", choices=["md", "csv", "json", "html"], default=None, help="default: from the file's extension")
    se.add_argument("-o", "--output", required=True, help="output file")
    st = sws.add_parser("stop", parents=[common], help="stop a sweep running on this machine (its running trial stops after the current batch)")
    st.add_argument("name")
    return p


def _runs_dir(args) -> Path:
    from .locations import default_runs_dir

    d = getattr(args, "sub_runs_dir", None) or args.runs_dir
    return Path(d) if d else default_runs_dir()


# -- commands ------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .runs.signals import StopSignals

    signals = StopSignals()  # first: a signal while torch loads is handled too, SIGHUP ignored
    try:
        return _train(args, signals)
    finally:
        signals.done()  # the run is over: a late SIGTERM must not turn the exit code into 143


def _train(args, signals) -> int:
    from .presets import DEFAULT_PRESET, load_preset
    from .runs import launch
    from .runs.store import RunDir, resolve_run
    from .training.console import ConsoleSink
    from .training.events import RunStatus

    runs_dir = _runs_dir(args)
    if args.resume or args.run_dir:
        if args.preset or (args.overrides and not args.resume):
            raise ConfigError("--resume continues a run with its saved config; drop --preset and --set")
    if launch.under_torchrun():  # one of torchrun's processes (train.gpus > 1, or the multi-machine recipe)
        return _train_rank(args, signals)
    sink = ConsoleSink(rich=False if args.plain else None, failure_detail=False)
    if args.resume:
        launch.check_resume_overrides(args.overrides)
        run = resolve_run(args.resume, runs_dir)
        lock = launch.lock_run(run)  # refused while another process trains it, before anything is read or changed
        try:
            plan = launch.plan_resume(run, overrides=args.overrides)  # this machine's devices checked too
            if args.overrides and not plan.completed:  # --set train.gpus=N: resume on another number of processes
                launch.set_world_size(run, args.overrides)
        except BaseException:  # refused: the run stays as it was, and nobody holds it
            lock.release()
            raise
        if plan.completed:
            launch.settle_records(run)  # a kill after the final event may have left the summary behind
            lock.release()
            early = plan.run.read_summary().get("early_stop_epoch")
            done = f"stopped early at epoch {early}" if early else f"completed all {plan.epochs_done} epochs"
            _note(f"run {plan.run.run_id} already {done}: nothing to resume")
            return EXIT_OK
        if launch.world_size(run.load_config()) > 1:
            session = launch.train_distributed(run, resume=True, plain=args.plain)
        else:
            session = launch.RunSession(plan.run, sinks=[sink], plan=plan)
    elif args.run_dir:  # a folder create_run made (the TUI's detached process, which hands down its lock)
        run = RunDir.open(args.run_dir)
        if launch.world_size(run.load_config()) > 1:
            session = launch.train_distributed(run, plain=args.plain)
        else:
            session = launch.RunSession(run, sinks=[sink])
    else:
        cfg = load_preset(args.preset or DEFAULT_PRESET, args.overrides)
        if launch.world_size(cfg) > 1:  # torchrun trains it: this process creates the folder, then follows
            session = launch.train_distributed(launch.create_run(cfg, runs_dir), plain=args.plain)
        else:
            session = launch.new_session(cfg, runs_dir, sinks=[sink])  # refused before a run folder exists
    signals.attach(session)
    try:
        summary = session.run()
    except OptaiError:
        _note(f"run folder: {session.run_dir.path}")
        raise  # main() shows the error once, as a panel (the sink said only "failed at epoch N")
    finally:
        sink.close()
    _note(f"run folder: {session.run_dir.path}")
    killed = getattr(session, "torchrun_killed", None)  # not a stop anyone asked for: say what happened, and what next
    if killed:
        n = summary.get("world_size") or "its"
        _note(f"{killed}; its {n} processes stopped together after epoch {summary.get('epochs_completed') or 0}. "
              f"Resume: optai-tui train --resume {session.run_dir.run_id}")
    return {RunStatus.COMPLETED: EXIT_OK, RunStatus.STOPPED: EXIT_STOPPED}.get(summary["status"], EXIT_FAILED)


def _train_rank(args, signals) -> int:
    """One of torchrun's processes: train this rank's part of the run folder (rank 0 records it). Its error
    goes to torchrun's error file too; stopped or completed, it exits 0 (the launcher reads the run's status)."""
    from .runs import launch
    from .runs.store import RunDir, resolve_run
    from .training.console import ConsoleSink
    from .training.distributed import from_env, launched, record_error
    from .training.events import RunStatus

    place = from_env()
    sinks = [ConsoleSink(rich=False if args.plain else None, failure_detail=False)] if place.rank == 0 else []
    try:
        dist = None
        if args.run_dir or args.resume:
            run = RunDir.open(args.run_dir) if args.run_dir else resolve_run(args.resume, _runs_dir(args))
        else:  # torchrun by hand with settings: rank 0 creates the run folder
            from .presets import DEFAULT_PRESET, load_preset

            cfg = load_preset(args.preset or DEFAULT_PRESET, args.overrides)
            run, dist = launch.create_run_on_ranks(cfg, _runs_dir(args), place)
        session = launch.RankSession(run, place, resume=bool(args.resume), sinks=sinks, dist=dist)
        signals.attach(session)
        status = session.run()
    except BaseException as e:
        if not isinstance(e, (KeyboardInterrupt, SystemExit)):
            record_error(e)
        raise
    finally:
        for sink in sinks:
            sink.close()
    if place.rank == 0 and not launched():  # started by hand (the multi-machine recipe): no launcher says it
        _note(f"run folder: {run.path}")
    return EXIT_FAILED if status is RunStatus.FAILED else EXIT_OK


def _note(text: str) -> None:
    """A line for the person at the terminal: best effort (a closed terminal or pipe loses it, nothing else)."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):
        pass


def cmd_presets(args) -> int:
    from .configio import config_to_commented_yaml
    from .presets import find_preset, list_presets, load_preset

    console = _table_console()  # whole lines in a pipe or a log: paths are not cut in two
    if args.action in (None, "list"):
        _print_presets(_table_console(), list_presets())
        return EXIT_OK
    if args.action == "show":
        cfg = load_preset(args.name)
        ref = find_preset(args.name)
        console.print(f"# {ref.path}", markup=False)
        console.print(config_to_commented_yaml(cfg), markup=False, soft_wrap=True)
        return EXIT_OK
    names = args.names or [r.name for r in list_presets()]
    bad = 0
    for n in names:
        err = _preset_error(n)
        if err is None:
            console.print(Text.assemble(("ok", "green"), f"      {n}"))
            for line in _preset_notes(n):  # what a run of it will do with its image folder
                console.print(Text(f"        {line}", style="dim"), soft_wrap=True)
            continue
        bad += 1
        console.print(Text.assemble(("invalid", "red"), f" {n}: {err}"))
        if len(err.problems) > 1:
            for p in err.problems:
                console.print(Text(f"        {p.field}: {p.message}" if p.field else f"        {p.message}"))
    return EXIT_INVALID if bad else EXIT_OK


def _preset_notes(name: str) -> list[str]:
    """What a run of a valid preset will do with its image folder (classes, validation, image size)."""
    from .presets import load_preset
    from .runs.preflight import data_notes

    try:
        return data_notes(load_preset(name))
    except (ConfigError, OSError):
        return []


def _print_presets(console: Console, presets) -> None:
    """The presets' names whole (they are what one types), whatever the width: beside them their source and
    description, wrapped; on a terminal too narrow for that, each description on its own lines below."""
    name_w = max([len("name"), *(len(r.name) for r in presets)])
    if console.width - name_w - len("shipped") - 4 >= 40:
        table = Table(box=None, pad_edge=False)
        table.add_column("name", no_wrap=True, min_width=name_w)
        table.add_column("source", no_wrap=True)
        table.add_column("description")
        for r in presets:
            table.add_row(Text(r.name), r.source, Text(r.description))
        console.print(table)
        return
    for r in presets:
        console.print(Text(f"{r.name}  ({r.source})"), soft_wrap=True)  # never cut: a long name runs on
        if r.description:
            console.print(Padding(Text(r.description, style="dim"), (0, 0, 0, 4)))  # wrapped lines indented too


def _preset_error(name: str) -> ConfigError | None:
    """What is wrong with a preset, as one error carrying every problem (None when it is valid): every
    field and every rule of the schema, then the dataset folder it names (the checks ``train`` makes before a run that do
    not depend on this machine's devices or runs)."""
    from .presets import find_preset, preset_problems
    from .runs.preflight import data_problems

    try:
        problems, cfg = preset_problems(name)  # every field and rule at once, not the first layer's alone
    except ConfigError as e:
        return e
    if cfg is not None:
        problems += [p for p in data_problems(cfg) if p not in problems]
    return ConfigError.from_problems(problems, where=f" (in {find_preset(name).path})") if problems else None


def cmd_runs(args) -> int:
    from .fmt import finite_json
    from .runs.store import list_runs

    runs = list_runs(_runs_dir(args))
    rows = []
    for r in runs:
        s, damaged = r.read_summary_checked()  # every field well typed; a damaged one says why
        s["status"] = r.status()
        if damaged:
            s["damaged"] = damaged
        rows.append(s)
    if getattr(args, "json", False):
        for s in rows:
            print(json.dumps(finite_json(s), allow_nan=False))
        return EXIT_OK
    if not rows:
        print(f"no runs in {_runs_dir(args)}")
        return EXIT_OK
    _print_runs(_table_console(), rows)
    for s in rows:  # the reason under the table: the run is still listed, with what its log tells
        if s.get("damaged"):
            rebuilt = "" if "events.jsonl cannot be read" in s["damaged"] else f" ({s.get('status')} as rebuilt from its events.jsonl)"
            _table_console().print(Text(f"damaged: {s.get('run_id')}: {s['damaged']}{rebuilt}"))
    return EXIT_OK


def _fits(table: Table, width: int) -> bool:
    """Whether ``table`` prints within ``width`` columns with no cell cut or wrapped."""
    import io

    probe = Console(file=io.StringIO(), width=10_000, highlight=False)
    probe.print(table)
    return max(len(ln.rstrip()) for ln in probe.file.getvalue().splitlines()) <= width


def _print_runs(console: Console, rows: list[dict]) -> None:
    """The runs as a table when its cells fit the width whole; on a narrower terminal (80 columns: a run id
    alone takes 30) each run on two lines, its id and status, then its figures indented, so that no number is
    cut ("61.…" said nothing)."""
    from .fmt import fmt_pct
    from .runs.summary import status_text

    cells = [
        (
            str(s.get("run_id", "?")),
            status_text(s),
            str(s.get("arch") or "-"),
            str(s.get("dataset") or "-"),
            str(s.get("transfer_mode") or "-"),
            f"{s['params']:,}" if s.get("params") else "-",
            f"{s.get('epochs_completed') or 0}/{s.get('epochs') or '?'}",
            fmt_pct(s.get("best_val_acc"), 2),
            f"{s.get('train_seconds') or 0:.0f}s",
        )
        for s in rows
    ]
    table = Table("run", "status", "arch", "dataset", "mode", "params", "epochs", "best val", "time", box=None)
    for col in table.columns:
        col.no_wrap = True
    for c in cells:
        table.add_row(*c)
    if _fits(table, console.width):
        console.print(table)
        return
    for run_id, status, arch, dataset, mode, params, epochs, best, secs in cells:
        console.print(Text(f"{run_id}  {status}"), soft_wrap=True)  # the id whole: --resume, attach, export take it
        figures = f"{arch} on {dataset}, {mode}, {params} params, {epochs} epochs, best val {best}, {secs}"
        console.print(Padding(Text(figures, style="dim"), (0, 0, 0, 4)))


def cmd_profile(args) -> int:
    from .models import get_model_info
    from .training.device import resolve_device, resolve_precision
    from .training.profile import profile_model

    info = get_model_info(args.arch)
    if args.image_size is not None and args.image_size < 1:
        raise ConfigError(f"must be at least 1, got {args.image_size}", field="--image-size")
    size = args.image_size or info.default_image_size
    if size < info.min_image_size:
        raise ConfigError(f"{args.arch} needs images of at least {info.min_image_size}px, got {size}px", field="--image-size")
    for flag, v in (("--num-classes", args.num_classes), ("--in-channels", args.in_channels)):
        if v < 1:
            raise ConfigError(f"must be at least 1, got {v}", field=flag)
    if not 0 < args.width <= 8:
        raise ConfigError(f"must be in (0, 8], got {args.width}", field="--width")
    try:
        dev = resolve_device(args.device)
    except OptaiError as e:
        raise type(e)(e.message, hint=e.hint, field="--device") from None
    if not 1 <= args.batch_size <= 65_536:
        raise ConfigError(f"must be in [1, 65536], got {args.batch_size}", field="--batch-size")
    try:
        amp = resolve_precision(args.precision, dev)
    except OptaiError as e:
        raise type(e)(e.message, hint=e.hint, field="--precision") from None
    try:
        prof = profile_model(args.arch, num_classes=args.num_classes, in_channels=args.in_channels, image_size=size, width=args.width,
                             device=str(dev), throughput_batch=args.batch_size, amp_dtype=amp, channels_last=args.channels_last)  # fmt: skip
    except Exception as e:  # out of memory is the user's to fix (a smaller model, image or batch), not a bug
        from .training.device import is_oom, memory_state, oom_message

        if not is_oom(e):
            raise
        raise TrainingError(oom_message(f"profiling {args.arch} at {size}px", dev, memory_state(dev)), kind="oom") from None
    d = prof.to_dict()
    if args.json:
        print(json.dumps(d))
        return EXIT_OK
    from .fmt import fmt_sig

    table = Table(box=None, show_header=False)
    units = {"latency_ms": "ms", "checkpoint_mb": "MiB", "throughput": "img/s", "train_throughput": "img/s", "throughput_batch": "images"}  # a number says what it counts
    for k, v in d.items():
        if k in units and isinstance(v, (int, float)) and not isinstance(v, bool):
            table.add_row(k, f"{fmt_sig(v, 4)} {units[k]}")
        else:
            table.add_row(k, f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else (f"{v:,.3f}" if isinstance(v, float) else str(v)))
    _table_console().print(table)
    return EXIT_OK


def cmd_doctor(args) -> int:
    import platform

    import torch

    from .data import default_data_root
    from .training.device import (
        compile_problem,
        cpu_flags,
        cpu_native_bf16,
        current_probe,
        detect_devices,
        precision_for,
        why_no_gpu,
    )

    console = _table_console()
    probe = current_probe(cuda_context=True)
    arch = f" ({', '.join(probe.arch_list)})" if probe.arch_list else ""
    console.print(f"optai-tui {__version__}, Python {platform.python_version()}, torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}{arch}", markup=False)
    for g in probe.smi:
        cap = f", sm_{g.capability[0]}{g.capability[1]}" if g.capability else ""
        console.print(f"  nvidia-smi GPU {g.index}: {g.name}{cap}, driver {g.driver or '?'}, {g.uuid}", markup=False)
    for d in detect_devices(probe=probe):
        mem = f", {d.free_mb / 1024:.1f} / {d.total_mb / 1024:.1f} GiB free" if d.total_mb else ""
        smi = f" (nvidia-smi GPU {d.smi_index})" if d.smi_index is not None and f"cuda:{d.smi_index}" != d.spec else ""
        bad = ", NOT USABLE by this torch build" if not d.usable else ""
        precision = ""
        if d.usable and d.spec != "mps":
            choice = precision_for("auto", torch.device(d.spec))
            precision = f"; precision auto: {choice.note or choice.name}"
        console.print(f"  device {d.spec}{smi}: {d.name}{mem}{bad}{precision}", markup=False)
    reason = why_no_gpu(probe)
    if reason:
        console.print(f"  no GPU: {reason}", markup=False)
    native = "native bf16 (AMX/AVX512-BF16)" if cpu_native_bf16(cpu_flags()) else "no native bf16"
    console.print(f"  cpu: {native}, capability {torch.backends.cpu.get_cpu_capability()}", markup=False)
    why = compile_problem()
    console.print(f"  torch.compile: {'available (C compiler and Python headers found)' if why is None else 'unavailable: ' + why + '; runs with train.compile fall back to eager'}", markup=False)
    mps = getattr(torch.backends, "mps", None)
    console.print(f"  MPS (Apple GPU): {'available' if mps is not None and mps.is_available() else 'not available'}", markup=False)
    root = default_data_root()
    console.print(f"data root: {root} ({'exists' if root.is_dir() else 'not created yet'})", markup=False)
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    weights = sorted(p.name for p in hub.glob("*.pth")) if hub.is_dir() else []
    console.print(f"weight cache: {hub} ({len(weights)} files{': ' + ', '.join(weights) if weights else ''})", markup=False)
    console.print(f"runs dir: {_runs_dir(args).resolve()}  cpu threads: {torch.get_num_threads()} of {os.cpu_count()}", markup=False)
    return EXIT_OK


def cmd_tui(args, attach: str | None = None) -> int:
    try:
        from .tui.app import run_app
    except ImportError as e:  # pragma: no cover - the TUI ships with the package
        raise ConfigError(f"the TUI is not available: {e}") from None
    return run_app(runs_dir=_runs_dir(args), attach=attach)


def cmd_export(args) -> int:
    from .runs.export import export_runs
    from .runs.outfile import is_stream

    output = Path(args.output)
    path = export_runs(args.runs, fmt=args.format, output=output, runs_dir=_runs_dir(args), per_epoch=args.per_epoch, force=args.force)
    # to stdout or a pipe the export is the output: the note goes to stderr
    print(f"wrote {path}", file=sys.stderr if is_stream(output) else sys.stdout)
    return EXIT_OK


def _answer_from_run(args, flag: str, count: int | None, answer: Callable[..., dict | list]) -> dict | list | None:
    """The opening ``evaluate`` and ``predict`` share: check their count flag, resolve the run, compute the
    answer from its best checkpoint; with --json, print it as strict JSON and return None (nothing to show)."""
    from .fmt import finite_json
    from .runs.store import resolve_run

    _check_positive(flag, count, whole=True)
    result = answer(resolve_run(args.run, _runs_dir(args)))
    if args.json:
        print(json.dumps(finite_json(result), indent=2, allow_nan=False))
        return None
    return result


def cmd_evaluate(args) -> int:
    from .fmt import fmt_pct
    from .runs.evaluate import evaluate_run
    from .training.classmetrics import confusion_text

    r = _answer_from_run(args, "--worst", args.worst, lambda run: evaluate_run(run, args.data, device=args.device, worst=args.worst))
    if r is None:
        return EXIT_OK
    out = _table_console()
    out.print(Text(f"run {r['run_id']}: best checkpoint (epoch {r['checkpoint_epoch']}) on {r['data']}: {r['images']} images"))
    base = f"   majority baseline {fmt_pct(r['majority_baseline'], 1)} ({r['majority_class']})" if r["majority_baseline"] is not None else ""
    out.print(Text(f"accuracy {fmt_pct(r['accuracy'], 2)}{base}   chance {fmt_pct(r['chance_acc'], 1)}   macro F1 {_num(r['macro_f1'])}   loss {_num(r['loss'])}"))
    table = Table("class", "images", "precision", "recall (acc)", "F1", box=None)
    for c in r["per_class"]:
        table.add_row(c["class"], str(c["support"]), _num(c["precision"]), _num(c["recall"]), _num(c["f1"]))
    out.print(table)
    out.print(Text("confusion matrix (rows: true class, columns: predicted)"))
    for line in confusion_text(r["classes"], r["confusion"], room=out.width):
        out.print(Text(line), soft_wrap=True)
    if "worst" in r:
        out.print(Text(f"{r['misclassified']} misclassified" + (f"; the worst {len(r['worst'])}:" if r["worst"] else "")))
        for w in r["worst"]:
            out.print(Text(f"  {w['file']}  {w['true']} -> {w['predicted']} ({fmt_pct(w['probability'], 1)}; {w['true']} {fmt_pct(w['true_probability'], 1)})"), soft_wrap=True)
    return EXIT_OK


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def cmd_predict(args) -> int:
    from .fmt import fmt_pct
    from .runs.evaluate import predict_files

    rows = _answer_from_run(args, "--top-k", args.top_k, lambda run: predict_files(run, args.images, top_k=args.top_k, device=args.device))
    if rows is None:
        return EXIT_OK
    table = Table("image", "class", "probability", *(["then"] if args.top_k > 1 else []), box=None)
    table.columns[0].overflow = "fold"  # a file name is never cut: it wraps
    for r in rows:
        first, *rest = r["predictions"]
        then = ", ".join(f"{p['class']} {fmt_pct(p['probability'], 1)}" for p in rest)
        table.add_row(r["file"], first["class"], fmt_pct(first["probability"], 1), *([then] if args.top_k > 1 else []))
    _table_console().print(table)
    return EXIT_OK


def cmd_export_model(args) -> int:
    from .runs.evaluate import export_model
    from .runs.outfile import is_stream
    from .runs.store import resolve_run

    runs_dir = _runs_dir(args)
    run = resolve_run(args.run, runs_dir)
    output = Path(args.output)
    path = export_model(run, args.format, output, runs_dir=runs_dir, force=args.force)
    print(f"wrote {path} ({args.format}: float32 RGB images in [0, 1], N x C x H x W, to logits)", file=sys.stderr if is_stream(output) else sys.stdout)
    return EXIT_OK


# -- sweeps --------------------------------------------------------------------------------
def cmd_sweep(args) -> int:
    actions = {"run": _sweep_run, "join": _sweep_join, "list": _sweep_list, "show": _sweep_show, "export": _sweep_export, "stop": _sweep_stop}
    if args.action is None:
        raise ConfigError("optai-tui sweep: name an action: run, join, list, show, export or stop", hint="see 'optai-tui sweep --help'")
    return actions[args.action](args)


def _check_positive(flag: str, value: float | None, *, whole: bool = False) -> None:
    if value is not None and (value < 1 if whole else value <= 0):
        raise ConfigError(f"must be {'at least 1' if whole else 'above 0'}, got {value:g}", field=flag)


def _sweep_run(args) -> int:
    from .sweep.runner import create_sweep, parse_gpus, run_workers
    from .sweep.spec import load_spec

    _check_positive("--n-trials", args.n_trials, whole=True)
    _check_positive("--timeout", args.timeout)
    if args.retry_lost is not None and args.retry_lost < 0:
        raise ConfigError(f"must be 0 or more, got {args.retry_lost}", field="--retry-lost")
    spec = load_spec(args.spec, name=args.name, n_trials=args.n_trials, timeout=args.timeout)
    if args.retry_lost is not None:
        spec.retry_lost = args.retry_lost
    gpus = parse_gpus(args.gpus)
    sweep = create_sweep(spec, _runs_dir(args), url=args.storage)  # every refusal before a study or a run exists
    folder, pid = sweep.folder, os.getpid()
    folder.write_pid(pid)
    from .sweep.runner import budget_used

    state = "new" if sweep.created else f"continuing, {budget_used(sweep.study)} trials so far"
    _note(f"sweep {spec.name}: {state}; folder {folder.path}")
    try:
        outcome = run_workers(sweep, gpus=gpus, timeout=spec.timeout)
    finally:
        folder.clear_pid(pid)
    return _sweep_done(sweep, outcome.ended)


def _sweep_join(args) -> int:
    from .sweep.runner import open_sweep, parse_gpus, run_workers

    _check_positive("--timeout", args.timeout)
    gpus = parse_gpus(args.gpus)
    if gpus and args.device:
        raise ConfigError("give --gpus or --device, not both", field="--device")
    if args.device:
        from .config import TrainConfig

        try:
            TrainConfig(device=args.device)
        except Exception:
            raise ConfigError(f"{args.device!r} is not a device; use cpu, cuda, cuda:N or mps", field="--device") from None
    sweep = open_sweep(args.name, _runs_dir(args), url=args.storage, retry_lost=args.retry_lost)
    outcome = run_workers(sweep, gpus=gpus, device=args.device, timeout=args.timeout or sweep.spec.timeout, label=args.label or "")
    return EXIT_STOPPED if outcome.ended == "stopped" else (_sweep_done(sweep, outcome.ended) if not args.label else EXIT_OK)


def _sweep_done(sweep, ended: str) -> int:
    from .sweep.results import load_results

    res = load_results(sweep, with_importances=False)
    c = res.counts()
    parts = ", ".join(f"{c[k]} {k}" for k in ("completed", "pruned", "failed", "stopped", "lost", "running", "waiting") if c.get(k))
    budget = f" of {res.budget}" if res.budget is not None else ""
    why = {"budget": "", "timeout": " (timeout)", "stopped": " (stopped)"}[ended]
    _note(f"sweep {res.name}: {res.used}{budget} trials{why}: {parts or 'none'}")
    for t in res.best[:5]:
        shown = ", ".join(f"{k}={_fmt_param(v)}" for k, v in t.params.items())
        cost = f", {res.spec.objectives[1]} {_fmt_param(t.cost)}" if res.multi else ""
        _note(f"{'best' if not res.multi else 'Pareto'}: trial {t.number}, val acc {_pct(t.value)}{cost} ({shown}), run {t.run_id}")
    if ended == "stopped":
        return EXIT_STOPPED
    if c.get("failed") and not (c.get("completed") or c.get("pruned")):
        return EXIT_FAILED
    return EXIT_OK


def _pct(v) -> str:
    from .fmt import fmt_pct

    return fmt_pct(v, 2)


def _fmt_param(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _sweep_status(folder, res) -> str:
    if folder.running_pid() is not None or any(t.state == "running" for t in res.trials):
        return "running"
    return "done" if res.is_finished() else "stopped"


def _sweep_list(args) -> int:
    from .sweep.results import load_results
    from .sweep.runner import open_sweep
    from .sweep.store import list_sweeps

    rows = []
    for folder in list_sweeps(_runs_dir(args)):
        info = folder.read_info()
        row = {"name": folder.name, "storage": info.get("storage") or "embedded", "status": "?", "used": None, "budget": None}
        try:
            res = load_results(open_sweep(folder.name, _runs_dir(args)), with_importances=False)
        except OptaiError as e:
            row.update(status="unreadable", error=e.headline())
        else:
            best = res.best[0] if res.best else None
            row.update(status=_sweep_status(folder, res), used=res.used, budget=res.budget, counts=res.counts(),
                       best_val_acc=best.value if best else None, best_trial=best.number if best else None)  # fmt: skip
        rows.append(row)
    if args.json:
        for r in rows:
            print(json.dumps(r))
        return EXIT_OK
    if not rows:
        print(f"no sweeps in {_runs_dir(args)}")
        return EXIT_OK
    table = Table("sweep", "status", "trials", "completed", "pruned", "failed", "best val", "storage", box=None)
    for r in rows:
        c = r.get("counts") or {}
        trials = "-" if r["used"] is None else f"{r['used']}/{r['budget'] if r['budget'] is not None else '-'}"
        best = f"{_pct(r.get('best_val_acc'))} (t{r['best_trial']})" if r.get("best_trial") is not None else "-"
        table.add_row(r["name"], r["status"], trials, str(c.get("completed", 0)), str(c.get("pruned", 0)), str(c.get("failed", 0)), best, r["storage"])
    _table_console().print(table)
    return EXIT_OK


def _sweep_show(args) -> int:
    from .fmt import fmt_seconds
    from .sweep.results import load_results
    from .sweep.runner import open_sweep

    sweep = open_sweep(args.name, _runs_dir(args), url=args.storage)
    res = load_results(sweep)
    if args.json:
        from .sweep.report import to_json

        print(json.dumps(to_json(res), indent=2))
        return EXIT_OK
    spec = res.spec
    console = _table_console()
    objective = " vs ".join(spec.objectives)
    console.print(f"sweep {res.name}: {res.used}/{res.budget if res.budget is not None else '-'} trials, status {_sweep_status(sweep.folder, res)}, storage {res.storage}", markup=False)
    console.print(f"base {spec.base}; objective {objective}; sampler {spec.sampler}; pruner {spec.pruner.name}", markup=False)
    for d in spec.dims:
        console.print(f"  {d.key}: {d.describe()}", markup=False)
    keys = [d.key for d in spec.dims]
    cols = ["trial", "state", *keys, "val acc"] + ([spec.objectives[1]] if res.multi else []) + ["pruned at", "time", "run"]
    table = Table(*cols, box=None)
    best = {t.number for t in res.best}
    for t in res.trials:
        row = [f"{t.number}{'*' if t.number in best else ''}", t.state, *(_fmt_param(t.params.get(k, "-")) for k in keys), _pct(t.value)]
        if res.multi:
            row.append(_fmt_param(t.cost) if t.cost is not None else "-")
        row += [f"epoch {t.pruned_epoch}" if t.pruned_epoch else "-", fmt_seconds(t.seconds), t.run_id or "-"]
        table.add_row(*row)
    if not _fits(table, console.width):
        # the run id is what attach, export and --resume take, and a parameter's name says what was searched:
        # on a terminal too narrow for the table whole (80 columns), each trial takes two lines, nothing cut
        table = None
        for t in res.trials:
            head = f"t{t.number}{'*' if t.number in best else ''}  {t.state}  val acc {_pct(t.value)}"
            if res.multi:
                head += f"  {spec.objectives[1]} {_fmt_param(t.cost) if t.cost is not None else '-'}"
            if t.pruned_epoch:
                head += f"  pruned at epoch {t.pruned_epoch}"
            console.print(Text(f"{head}  {fmt_seconds(t.seconds)}  run {t.run_id or '-'}"), soft_wrap=True)
            params = ", ".join(f"{k}={_fmt_param(t.params.get(k, '-'))}" for k in keys)
            console.print(Padding(Text(params, style="dim"), (0, 0, 0, 4)))
    if table is not None:
        console.print(table)
    if res.best:
        label = "best trial" if not res.multi else "Pareto front (* above)"
        console.print(f"{label}: " + "; ".join(f"t{t.number} {_pct(t.value)}" + (f" / {_fmt_param(t.cost)}" if res.multi else "") for t in res.best), markup=False)
    if res.importances:
        console.print("parameter importances (Optuna):", markup=False)
        for k, v in res.importances.items():
            console.print(f"  {k:<28} {'#' * max(1, round(v * 40))} {v:.2f}", markup=False)
    else:
        console.print("parameter importances: after two completed trials", markup=False)
    return EXIT_OK


def _sweep_export(args) -> int:
    from .runs.report import is_stream
    from .sweep.report import export_sweep
    from .sweep.runner import open_sweep

    output = Path(args.output)
    sweep = open_sweep(args.name, _runs_dir(args), url=args.storage)
    path = export_sweep(sweep, output, fmt=args.format)
    print(f"wrote {path}", file=sys.stderr if is_stream(output) else sys.stdout)
    return EXIT_OK


def _sweep_stop(args) -> int:
    from .sweep.runner import stop_sweep
    from .sweep.store import resolve_sweep

    folder = resolve_sweep(args.name, _runs_dir(args))
    pid = stop_sweep(folder)
    if pid is None:
        print(f"sweep {folder.name} is not running on this machine")
        return EXIT_OK
    print(f"asked sweep {folder.name} (pid {pid}) to stop; its running trial stops after the current batch")
    return EXIT_OK


COMMANDS: dict[str, Callable] = {
    "train": cmd_train,
    "presets": cmd_presets,
    "runs": cmd_runs,
    "profile": cmd_profile,
    "doctor": cmd_doctor,
    "export": cmd_export,
    "sweep": cmd_sweep,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "export-model": cmd_export_model,
}


def _format_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001
    """Warnings for a user: what happened, not the source line that noticed it."""
    return f"warning: {message}\n"


def _reopen_closed_std_streams() -> None:
    """``optai-tui train >&- 2>&-`` (or started by a daemon with no stdout): a closed standard descriptor becomes
    /dev/null, so that console output is dropped instead of failing the run, and no file opened later takes its
    number (a child process, torchrun and its ranks, would write its output into it)."""
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError:
            pass
        try:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            if getattr(sys, name) is None:
                setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115
        except OSError:
            pass


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    _reopen_closed_std_streams()
    if hasattr(signal, "SIGXFSZ"):  # past `ulimit -f` a write fails with EFBIG (a clear error) instead of killing us
        with contextlib.suppress(ValueError):  # not the main thread: Python already ignores it there
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            return cmd_tui(args)
        if args.command == "attach":
            return cmd_tui(args, attach=args.run)
        return COMMANDS[args.command](args)
    except OptaiError as e:
        print_error(e)
        return e.exit_code
    except KeyboardInterrupt:
        return EXIT_STOPPED
    except BrokenPipeError:  # the reader went away (`... | head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not complain
        return EXIT_OK
    except Exception as e:  # a bug: a short panel for the user, the traceback in a log file
        from .fsio import save_crash_log
        from .locations import crash_log_path

        where = save_crash_log(crash_log_path())
        try:
            _err_console().print(Panel(f"internal error: {type(e).__name__}: {e}\n[dim]{where}; please report it[/dim]", title="error", border_style="red", expand=False))
        except (OSError, ValueError):  # no terminal any more: the crash log has it
            pass
        return EXIT_FAILED


def entry() -> None:
    code = main()
    _flush_or_drop_output()
    sys.exit(code)


def _flush_or_drop_output() -> None:
    """Flush stdout and stderr now; one that cannot be written any more (a closed pipe, a terminal gone
    with an SSH connection) is pointed at /dev/null, so that Python's flush at exit neither prints
    "Exception ignored ... BrokenPipeError" nor turns the exit code into 120."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


if __name__ == "__main__":
    entry()
