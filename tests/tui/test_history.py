"""The dashboard's model without Textual: bounded downsampling, replay, resume rewinds, ETA."""

from __future__ import annotations

import tracemalloc

from tui_synthetic import make_run

from optai_tui.runs.follow import follow_run
from optai_tui.training import events as ev
from optai_tui.tui.history import RunModel, Series, fmt_duration


def started(*, time: float, epochs: int, steps_per_epoch: int, start_epoch: int, resumed: bool = False) -> ev.RunStarted:
    return ev.RunStarted(
        run_id="r", arch="resnet18", dataset="shapes", device="cpu", device_name="CPU", epochs=epochs,
        start_epoch=start_epoch, steps_per_epoch=steps_per_epoch, num_train=100, num_val=10, params=1,
        trainable_params=1, precision="fp32", resumed=resumed, time=time,
    )  # fmt: skip


def epoch_end(*, time: float, epoch: int, epochs: int, train_loss: float, train_acc: float, val_loss: float, val_acc: float) -> ev.EpochEnd:
    m = ev.EpochMetrics(train_loss=train_loss, train_acc=train_acc, lr=0.1, images_per_second=10.0, epoch_seconds=1.0,
                        peak_memory_mb=1.0, val_loss=val_loss, val_acc=val_acc)  # fmt: skip
    return ev.EpochEnd(epoch=epoch, epochs=epochs, metrics=m, best_val_acc=val_acc, elapsed_seconds=time, time=time)


def test_series_stays_bounded_and_uniform():
    s = Series(64)
    for i in range(10_000):
        s.add(float(i), float(i % 2))
    xs, ys = s.points()
    assert len(xs) <= 65
    assert xs[-1] == 9999.0
    assert all(b > a for a, b in zip(xs, xs[1:], strict=False))
    # pairs merged by their mean: the alternating 0/1 signal averages to 0.5
    assert all(abs(y - 0.5) < 1e-9 for y in ys[:-1])
    assert s.count == 10_000


def test_series_skips_non_finite_and_truncates():
    s = Series(8)
    for i in range(6):
        s.add(float(i), 1.0)
    s.add(6.0, float("nan"))
    assert len(s) == 6
    s.truncate_after(2.5)
    assert s.points()[0] == [0.0, 1.0, 2.0]


def test_replay_fills_the_model(runs_dir):
    run = make_run(runs_dir, epochs=5, warnings={4: "train/val accuracy gap widening (20%)"})
    model = RunModel(run.run_id)
    calls = []
    follow_run(run, model, notify=lambda: calls.append(1), cancelled=lambda: len(calls) >= 2, poll=0.01, idle_poll=0.01)
    assert model.status == "completed"
    assert model.epochs_done == 5 and len(model.rows) == 5
    assert len(model.val_acc_series) == 5
    assert model.summary and model.summary["status"] == "completed"
    assert any("gap widening" in text for _, _, text in model.log)


def test_resume_rewinds_history():
    model = RunModel("r")
    model.apply(started(time=0, epochs=3, steps_per_epoch=2, start_epoch=0))
    for g in range(1, 4):
        model.apply(
            ev.BatchEnd(
                time=g,
                epoch=(g + 1) // 2,
                step=2 - g % 2,
                steps_per_epoch=2,
                global_step=g,
                loss=1.0,
                lr=0.1,
                images_per_second=10,
            )
        )
        if g == 2:
            model.apply(
                epoch_end(time=g, epoch=1, epochs=3, train_loss=1, train_acc=0.1, val_loss=1, val_acc=0.1)
            )
    model.apply(ev.RunStopped(epoch=1, reason="stop", time=4))
    assert model.status == "stopped"
    model.apply(started(time=5, epochs=3, steps_per_epoch=2, start_epoch=1, resumed=True))
    assert model.status == "running"
    assert max(model.loss.points()[0]) <= 1.0  # the half epoch after the checkpoint is forgotten
    assert [r["epoch"] for r in model.rows] == [1]


def test_eta_from_event_times():
    model = RunModel("r")
    model.apply(started(time=0, epochs=2, steps_per_epoch=10, start_epoch=0))
    for g in range(1, 6):
        model.apply(
            ev.BatchEnd(
                time=float(g),
                epoch=1,
                step=g,
                steps_per_epoch=10,
                global_step=g,
                loss=1.0,
                lr=0.1,
                images_per_second=10,
            )
        )
    epoch_left, run_left = model.eta()
    assert abs(epoch_left - 5.0) < 1e-6  # 5 steps at 1 step/s
    assert abs(run_left - 15.0) < 1e-6  # plus one more epoch of 10 steps
    assert fmt_duration(75) == "1:15" and fmt_duration(3700) == "1h01m" and fmt_duration(None) == "-"


def test_model_memory_is_flat():
    def replay(steps: int) -> int:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        model = RunModel("r")
        model.apply(started(time=0, epochs=steps // 100, steps_per_epoch=100, start_epoch=0))
        for g in range(1, steps + 1):
            model.apply(
                ev.BatchEnd(
                    time=g,
                    epoch=1 + (g - 1) // 100,
                    step=1 + (g - 1) % 100,
                    steps_per_epoch=100,
                    global_step=g,
                    loss=1.0 / g,
                    lr=0.1,
                    images_per_second=10.0,
                )
            )
            if g % 100 == 0:
                model.apply(
                    epoch_end(time=g, epoch=g // 100, epochs=steps // 100, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5)
                )
        used = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        del model
        return used

    small, large = replay(1_000), replay(20_000)
    assert large <= 1.2 * small, (small, large)


def test_a_training_process_killed_by_a_signal_reads_stopped_as_on_the_runs_screen(tmp_path):
    """A new user's kill -9 of a run the TUI started: the dashboard said `failed` and `training process exited
    with code -9 before finishing:` (a colon, then nothing) while the runs screen said `stopped`. A signal
    reads stopped, names the signal and says how to go on; a crash (an exit code) still reads failed."""
    import subprocess
    import sys

    from optai_tui.runs.follow import _process_gone

    run = make_run(tmp_path / "runs", epochs=2)
    killed = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    killed.kill()
    killed.wait()
    model = RunModel(run.run_id)
    model.status = "running"
    model.process_gone(_process_gone(run, killed))
    assert model.status == "stopped", model.error
    assert "killed by SIGKILL" in model.error and "resumes" in model.error and not model.error.endswith(":")
    crashed = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    crashed.wait()
    model = RunModel(run.run_id)
    model.status = "running"
    model.process_gone(_process_gone(run, crashed))
    assert model.status == "failed" and "exited with code 3" in model.error
