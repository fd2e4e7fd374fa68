"""The training dashboard of one run, rebuilt from its folder and followed live.

A thread worker tails ``events.jsonl`` into a ``RunModel`` (no widget is touched off the UI thread) and
posts a coalescing ``RunUpdated``; the screen redraws at most every ``REDRAW_INTERVAL`` seconds, charts
only when their data changed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar, Static
from textual.worker import get_current_worker

from ...fmt import fmt_mib, fmt_pct, fmt_rate, fmt_secs, fmt_sig
from ...runs.follow import follow_run
from ...runs.store import RunDir
from ...runs.summary import status_text
from ...training.events import ControlAction
from ..history import RunModel, fmt_duration
from ..messages import ResumeRun, RunUpdated
from ..widgets.metric_chart import LR_COLOR, TRAIN_COLOR, VAL_COLOR, Line, MetricChart
from ..widgets.epoch_table import EpochTable
from ..widgets.run_log import RunLog
from .confirm import ConfirmScreen

REDRAW_INTERVAL = 0.25  # seconds: text and progress redraw at most 4 times a second
CHART_INTERVAL = 2.0  # charts (the costly part: plotext builds, Textual re-renders every cell) every 2 s at most
CONTROL_LABELS = {a.value: a.label for a in ControlAction}
STATUS_STYLE = {
    "running": "bold green",
    "completed": "bold green",
    "stopped": "bold yellow",
    "pruned": "bold magenta",
    "failed": "bold red",
    "waiting": "dim",
    "resuming": "bold cyan",
}
RESUME_GRACE_S = 5.0  # after u: how long a resume may take to have its process before "resuming" is dropped


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("s", "stop_now", "Stop now", tooltip="stop after the current batch, with a checkpoint (asks first)"),
        Binding("e", "stop_after_epoch", "Stop after epoch", tooltip="finish this epoch (validation, checkpoint), then stop"),
        Binding("l", "lr_div10", "LR/10", tooltip="divide the learning rate by 10 now (e.g. on a plateau)"),
        Binding("u", "resume", "Resume", tooltip="continue a stopped or failed run from its last completed epoch"),
        Binding("z", "zoom", "Zoom", tooltip="charts use the whole height (hides the table and log)"),
        Binding("c", "classes", "Classes", tooltip="the best checkpoint class by class: precision, recall, F1, confusion matrix"),
        Binding("b,escape", "back", "Back", tooltip="back to the screen underneath; the run keeps training"),
        Binding("r", "app.runs", "Runs", tooltip="every run: compare, export, resume, use as a backbone", show=False),
    ]

    def __init__(self, run: RunDir, process: Callable[[], subprocess.Popen | None] = lambda: None) -> None:
        super().__init__()
        self.run = run
        self.run_id = run.run_id
        self.model = RunModel(run.run_id)
        self._process = process
        self._last_draw = 0.0
        self._timer = None
        self._chart_timer = None
        self._last_chart_draw = 0.0
        self._drawn_step = -1
        self._drawn_epoch = -1
        self._drawn_status = ""
        self._resume_asked: float | None = None  # u pressed (monotonic): "resuming" until the new process trains
        self.redraws = 0
        self._shown: dict[str, str] = {}

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="dash-top"):
            yield Static(self.run_id, id="run-title", markup=False)
            with Horizontal(classes="progress-line", id="epoch-line"):
                yield Label("epoch -", id="epoch-label", classes="progress-label")
                yield ProgressBar(total=1, show_eta=False, id="epoch-bar")
                yield Label("", id="run-eta", classes="progress-eta")
            with Horizontal(classes="progress-line", id="batch-line"):
                yield Label("batch -", id="batch-label", classes="progress-label")
                yield ProgressBar(total=1, show_eta=False, id="batch-bar")
                yield Label("", id="epoch-eta", classes="progress-eta")
            yield Static("", id="run-stats", markup=False)
            yield Static("", id="run-summary", markup=False)
        with Horizontal(id="charts"):
            yield MetricChart("loss", id="loss-chart")
            yield MetricChart("accuracy %", id="acc-chart")
            yield MetricChart("learning rate", id="lr-chart")
        with Horizontal(id="dash-bottom"):
            yield EpochTable(id="epoch-table")
            yield RunLog(id="run-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "optai-tui"
        self.sub_title = f"run {self.run_id}"
        self.query_one("#run-summary").display = False
        self.follow()
        self.set_interval(1.0, self._tick)

    # -- following --------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def follow(self) -> None:
        worker = get_current_worker()
        follow_run(
            self.run,
            self.model,
            notify=lambda: self.post_message(RunUpdated(self.run_id)),
            cancelled=lambda: worker.is_cancelled,
            process=self._process,
        )

    def on_resize(self) -> None:
        self.call_after_refresh(self._draw_progress)  # the stats line fits what it shows to its width

    def on_run_updated(self, message: RunUpdated) -> None:
        message.stop()
        self.schedule_redraw()

    def schedule_redraw(self) -> None:
        wait = REDRAW_INTERVAL - (time.monotonic() - self._last_draw)
        if wait <= 0:
            self.redraw()
        elif self._timer is None:
            self._timer = self.set_timer(wait, self._timed_redraw)

    def _timed_redraw(self) -> None:
        self._timer = None
        self.redraw()

    def _charts_later(self) -> None:
        """Charts changed but were drawn less than CHART_INTERVAL ago: draw them when it has passed."""
        if self._chart_timer is None:
            wait = max(0.0, CHART_INTERVAL - (time.monotonic() - self._last_chart_draw))
            self._chart_timer = self.set_timer(wait + 0.01, self._timed_chart_redraw)

    def _timed_chart_redraw(self) -> None:
        self._chart_timer = None
        self.redraw()

    def _tick(self) -> None:
        if self.model.status == "running" or self._resume_asked is not None:
            self._draw_progress()

    def resuming(self, status: str | None = None) -> bool:
        """``u`` was pressed and the resumed process is starting (importing torch, torchrun spawning its ranks):
        the run still reads stopped or failed in its log until the new process records its start."""
        if self._resume_asked is None:
            return False
        status = status or self.model.status
        if status not in ("stopped", "failed"):
            self._resume_asked = None  # the new process is training (or it ended): its log says so
            return False
        proc = self._process()
        if (proc is None or proc.poll() is not None) and time.monotonic() - self._resume_asked > RESUME_GRACE_S:
            self._resume_asked = None  # refused, or the process ended before it could train
            self.refresh_bindings()
            return False
        return True

    # -- drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        now = time.monotonic()
        self._last_draw = now
        self.redraws += 1
        m = self.model
        table, log_pane = self.query_one(EpochTable), self.query_one(RunLog)
        charts_due = now - self._last_chart_draw >= CHART_INTERVAL or m.finished
        with m.lock:
            step_changed = m.step_version != self._drawn_step
            epoch_changed = m.epoch_version != self._drawn_epoch
            loss = lr = val_loss = accs = None
            if charts_due:
                if step_changed or epoch_changed:
                    loss, val_loss = m.loss.points(), m.val_loss.points()
                if step_changed:
                    lr = m.lr.points()
                if epoch_changed:
                    accs = (m.train_acc.points(), m.val_acc_series.points())
                self._drawn_step, self._drawn_epoch = m.step_version, m.epoch_version
            rows_changed = (m.rows_seq, m.rows_gen) != (table.drawn_seq, table.drawn_gen)
            rows, rows_seq, rows_gen = (list(m.rows) if rows_changed else []), m.rows_seq, m.rows_gen
            log = [e for e in m.log if e[0] > log_pane.drawn_seq]
            status = m.status
        if charts_due and (step_changed or epoch_changed):
            self._last_chart_draw = now
        elif step_changed or epoch_changed:
            self._charts_later()
        if loss is not None:
            self.query_one("#loss-chart", MetricChart).set_lines(
                [Line("train", *loss, TRAIN_COLOR), Line("val", *val_loss, VAL_COLOR)]
            )
        if lr is not None:
            self.query_one("#lr-chart", MetricChart).set_lines([Line("lr", *lr, LR_COLOR)])
        if accs is not None:
            self.query_one("#acc-chart", MetricChart).set_lines(
                [Line("train", *accs[0], TRAIN_COLOR), Line("val", *accs[1], VAL_COLOR)]
            )
        if rows_changed:
            table.sync(rows, rows_seq, rows_gen)
        if log:
            log_pane.sync(log)
        self._draw_progress()
        if status != self._drawn_status:
            self._drawn_status = status
            self.refresh_bindings()

    def _draw_progress(self) -> None:
        m = self.model
        with m.lock:
            info, status, error = dict(m.info), m.status, m.error
            epoch, epochs, done = m.epoch, m.epochs, m.epochs_done
            step, steps = m.step, m.steps_per_epoch
            (ips, ips_kind), val, best, mem = m.throughput(), m.val_acc, m.best_val_acc, m.peak_memory_mb
            lr = m.current_lr
            summary = dict(m.summary) if m.summary else None
            baseline, majority, chance, early = m.majority_baseline, m.majority_class, m.chance, m.early_stop_epoch
        epoch_eta, run_eta = m.eta(time.time())
        starting = self.resuming(status)
        title = Text()
        shown_status = "resuming" if starting else status_text({"status": status, "early_stop_epoch": early})
        title.append(f"{shown_status:<9}", style=STATUS_STYLE.get("resuming" if starting else status, ""))
        title.append(f" {self.run_id}")
        if info:
            title.append(f"  {info.get('arch')} on {info.get('dataset')}, {info.get('device')}", style="dim")
        self._set("#run-title", title)
        self._set("#epoch-label", f"epoch {epoch}/{epochs or '?'}")
        self._set("#batch-label", f"batch {step}/{steps or '?'}")
        ebar, bbar = self.query_one("#epoch-bar", ProgressBar), self.query_one("#batch-bar", ProgressBar)
        if epochs and (ebar.total, ebar.progress) != (epochs, done):
            ebar.update(total=epochs, progress=done)
        if steps and (bbar.total, bbar.progress) != (steps, step):
            bbar.update(total=steps, progress=step)
        self._set("#run-eta", f"run ETA {fmt_duration(run_eta)}" if run_eta is not None else "")
        self._set("#epoch-eta", f"epoch ETA {fmt_duration(epoch_eta)}" if epoch_eta is not None else "")
        parts = [
            f"{fmt_rate(ips)} {ips_kind}" if ips else f"- img/s {ips_kind}",
            f"val acc {fmt_pct(val, 2)}",
            f"best {fmt_pct(best, 2)}",
            *([f"majority {fmt_pct(baseline, 1)}"] if baseline is not None else []),
            f"mem {fmt_mib(mem)}" if mem else "mem -",
            f"lr {lr:.3g}" if lr is not None else "lr -",
        ]
        stats = self.query_one("#run-stats", Static)
        room = stats.size.width or self.size.width - 2
        while room and len(" | ".join(parts)) > room and len(parts) > 3:
            parts.pop()  # lr, then memory: whole items go rather than a cut number (the lr chart has the lr)
        self._set("#run-stats", " | ".join(parts))
        box = self.query_one("#run-summary", Static)
        if starting:
            text = Text(f"resuming after epoch {done}: starting the training process...", style=STATUS_STYLE["resuming"])
            if self._shown.get("#run-summary") != text.plain:
                self._shown["#run-summary"] = text.plain
                box.update(text)
            box.display, stats.display = True, False
        elif status in ("completed", "stopped", "failed", "pruned"):
            # The summary takes the stats line's place, on one line (a failed run's error under it): the charts
            # keep the height they had while the run trained.
            summary = {"majority_baseline": baseline, "majority_class": majority, "chance_acc": chance, "early_stop_epoch": early, **(summary or {})}
            text = self.summary_text(status, summary, error, width=room)
            if self._shown.get("#run-summary") != text.plain:
                self._shown["#run-summary"] = text.plain
                box.update(text)
            box.display = True
            stats.display = False
        else:
            box.display = False
            stats.display = True

    def _set(self, selector: str, content: str | Text) -> None:
        """Update a one-line, fixed-size label only when its text changed, without a layout pass."""
        key = content.plain + str(content.spans) if isinstance(content, Text) else content
        if self._shown.get(selector) == key:
            return
        self._shown[selector] = key
        self.query_one(selector, Static).update(content, layout=False)

    @staticmethod
    def summary_text(status: str, s: dict | None, error: str | None, width: int = 0) -> Text:
        """The ended run in one line (items that do not fit ``width`` are left out whole), and a failed
        run's error under it."""
        s = s or {}
        t = Text()
        shown = status_text(dict(s, status=status))
        total = s.get("epochs", "?")
        against = [f"majority {fmt_pct(s['majority_baseline'], 1)}"] if s.get("majority_baseline") is not None else []
        against += [f"chance {fmt_pct(s['chance_acc'], 1)}"] if s.get("chance_acc") is not None else []
        parts = [
            f"{s.get('epochs_completed', '?')}/{total} epoch{'' if total == 1 else 's'}",
            f"best val {fmt_pct(s.get('best_val_acc'), 2)}" + (f" ({', '.join(against)})" if against else ""),
            f"final {fmt_pct(s.get('final_val_acc'), 2)}",
        ]
        ev_ = s.get("evaluation")
        if isinstance(ev_, dict) and ev_.get("per_class"):  # the weakest class, and the key for the whole table
            scored = [c for c in ev_["per_class"] if isinstance(c, dict) and isinstance(c.get("recall"), (int, float))]
            weakest = min(scored, key=lambda c: c["recall"], default=None)
            f1 = ev_.get("macro_f1")
            parts.append(
                "macro F1 " + (f"{f1:.3f}" if isinstance(f1, (int, float)) else "-")
                + (f", weakest {weakest.get('class', '?')} {fmt_pct(weakest['recall'], 1)}" if weakest is not None else "")
                + " (c: per class)"
            )
        parts.append(fmt_secs(float(s.get("train_seconds") or 0)))
        if s.get("images_per_second"):
            parts.append(f"{fmt_rate(s['images_per_second'])} overall")
        if s.get("seconds_per_epoch"):
            parts.append(f"{fmt_sig(s['seconds_per_epoch'])} s/epoch")
        if s.get("params"):
            parts.append(f"{s['params']:,} params")
        if width and len(shown) + 2 + len(", ".join(parts[:2])) > width:
            shown = status  # the title above says "(early stop at epoch N)" too: the figures come first here
        while width and len(shown) + 2 + len(", ".join(parts)) > width and len(parts) > 2:
            parts.pop()
        t.append(f"{shown}: ", style=STATUS_STYLE.get(status, ""))
        t.append(", ".join(parts))
        err = error or s.get("error")
        if status == "failed" and err:
            t.append(f"\n{err.splitlines()[0]}", style="red")
        return t

    # -- controls -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Controls only while training, resume only once it ended: hidden otherwise, so the footer fits 80 columns.
        if action in CONTROL_LABELS:  # a stop sent while a resumed process starts is applied when it does
            return self.model.status in ("running", "waiting") or self._resume_asked is not None
        if action == "resume":
            return self.model.status in ("stopped", "failed") and self._resume_asked is None
        if action == "classes":
            return self.model.evaluation is not None
        return True

    def action_stop_now(self) -> None:
        def answer(ok: bool | None) -> None:
            if ok:
                self.send_control(ControlAction.STOP_NOW)

        self.app.push_screen(ConfirmScreen("Stop this run now? (a checkpoint is saved after the current batch)"), answer)

    def action_stop_after_epoch(self) -> None:
        self.send_control(ControlAction.STOP_AFTER_EPOCH)

    def action_lr_div10(self) -> None:
        self.send_control(ControlAction.LR_DIV10)

    def send_control(self, action: ControlAction) -> None:
        try:
            self.run.send_control(action)
        except OSError as e:
            self.notify(f"could not send '{action.label}': {e}", severity="error")
            return
        self.model.add_log("control", f"requested: {action.label} (the trainer applies it at its next check)")
        self.schedule_redraw()

    def resume_refused(self) -> None:
        """The app did not start a process for ``u`` (the refusal is in a notification): no "resuming"."""
        self._resume_asked = None
        self.refresh_bindings()
        self._draw_progress()

    def action_resume(self) -> None:
        self._resume_asked = time.monotonic()
        self.refresh_bindings()
        self._draw_progress()
        self.post_message(ResumeRun(self.run_id))

    def action_classes(self) -> None:
        from .class_report import ClassReportScreen

        m = self.model
        with m.lock:
            evaluation, args = m.evaluation, (m.majority_baseline, m.majority_class, m.chance)
        if evaluation is not None:
            self.app.push_screen(ClassReportScreen(self.run_id, evaluation, *args))

    def action_zoom(self) -> None:
        self.toggle_class("-zoom")

    def action_back(self) -> None:
        self.app.pop_screen()
