"""ETAs of the dashboard (issue 13): a smoothed training rate that does not count an epoch's validation as
training, what an epoch costs besides its steps, the epochs left after a resume, "stop after this epoch".
Synthetic event streams with explicit times: the truth of each case is known exactly."""

from __future__ import annotations

import pytest

from optai_tui.training import events as ev
from optai_tui.tui.history import RunModel



def started(*, time: float, epochs: int, steps_per_epoch: int, start_epoch: int, resumed: bool = False) -> ev.RunStarted:
    return ev.RunStarted(
        run_id="r", arch="resnet18", dataset="shapes", device="cpu", device_name="CPU", epochs=epochs,
        start_epoch=start_epoch, steps_per_epoch=steps_per_epoch, num_train=100, num_val=10, params=1,
        trainable_params=1, precision="fp32", resumed=resumed, time=time,
    )  # fmt: skip


def epoch_end(*, time: float, epoch: int, epochs: int) -> ev.EpochEnd:
    m = ev.EpochMetrics(train_loss=1.0, train_acc=0.5, lr=0.1, images_per_second=10.0, epoch_seconds=1.0,
                        peak_memory_mb=1.0, val_loss=1.0, val_acc=0.5)  # fmt: skip
    return ev.EpochEnd(epoch=epoch, epochs=epochs, metrics=m, best_val_acc=0.5, elapsed_seconds=time, time=time)

SPE = 100  # steps per epoch


def batch(t: float, epoch: int, step: int) -> ev.BatchEnd:
    return ev.BatchEnd(time=t, epoch=epoch, step=step, steps_per_epoch=SPE, global_step=(epoch - 1) * SPE + step,
                       loss=1.0, lr=0.1, images_per_second=100.0)  # fmt: skip


def train_epoch(model: RunModel, epoch: int, t0: float, rate: float, *, until: int = SPE, val: float = 0.0, every: int = 5) -> float:
    """Batches of ``epoch`` from time t0 at ``rate`` steps/s, reported every ``every`` steps, up to step ``until``;
    then (a whole epoch) ``val`` seconds of validation and its EpochEnd. Returns the time reached."""
    for step in range(every, until + 1, every):
        model.apply(batch(t0 + step / rate, epoch, step))
    t = t0 + until / rate
    if until == SPE:
        t += val
        model.apply(epoch_end(time=t, epoch=epoch, epochs=model.epochs))
    return t


def test_validation_is_not_counted_as_training_and_is_added_to_each_epoch():
    """10 steps/s and 10 s of validation an epoch: early in epoch 2 its ETA is 90 steps + validation (19 s)
    and the run's adds epoch 3 whole (20 s). The old estimate counted the validation gap as slow steps."""
    model = RunModel("r")
    model.apply(started(time=0.0, epochs=3, steps_per_epoch=SPE, start_epoch=0))
    t = train_epoch(model, 1, 0.0, 10.0, val=10.0)
    t = train_epoch(model, 2, t, 10.0, until=10)
    epoch_left, run_left = model.eta(t)
    assert epoch_left == pytest.approx(19.0, rel=0.02) and run_left == pytest.approx(39.0, rel=0.02)


def test_the_rate_is_smoothed_over_uneven_progress_reports():
    """Progress reports are throttled in time, so they cover uneven numbers of steps (here 1 and 9 in turn,
    each in 0.5 s: 10 steps/s). Once a few seconds are measured the epoch ETA stays within 10% of the truth
    after every report (an average of per-interval rates swung between 2 and 18 steps/s: 14% off)."""
    model = RunModel("r")
    model.apply(started(time=0.0, epochs=1, steps_per_epoch=SPE, start_epoch=0))
    t, step = 0.0, 0
    for i in range(18):
        t += 0.5
        step += 1 if i % 2 == 0 else 9
        model.apply(batch(t, 1, step))
        if i >= 9:
            epoch_left, run_left = model.eta(t)
            assert epoch_left == pytest.approx((SPE - step) / 10.0, rel=0.10), (i, step, epoch_left)
            assert run_left == pytest.approx(epoch_left)


def test_after_a_resume_the_run_eta_counts_the_epochs_left_at_the_new_speed():
    """3 of 10 epochs trained at 10 steps/s, stopped, resumed on a machine half as fast: mid-epoch 4 the run
    ETA is what is left of epoch 4 plus 6 epochs at 5 steps/s, not at the first session's pace."""
    model = RunModel("r")
    model.apply(started(time=0.0, epochs=10, steps_per_epoch=SPE, start_epoch=0))
    t = 0.0
    for epoch in (1, 2, 3):
        t = train_epoch(model, epoch, t, 10.0, val=1.0)
    model.apply(ev.RunStopped(epoch=3, reason="stop requested", time=t))
    t += 3600.0  # an hour later, elsewhere
    model.apply(started(time=t, epochs=10, steps_per_epoch=SPE, start_epoch=3, resumed=True))
    t = train_epoch(model, 4, t, 5.0, until=50)
    epoch_left, run_left = model.eta(t)
    assert epoch_left == pytest.approx(10.0, rel=0.02)  # 50 steps at 5/s
    assert run_left == pytest.approx(10.0 + 6 * 20.0, rel=0.02)


def test_stop_after_this_epoch_ends_the_run_eta_with_the_epoch():
    model = RunModel("r")
    model.apply(started(time=0.0, epochs=20, steps_per_epoch=SPE, start_epoch=0))
    t = train_epoch(model, 1, 0.0, 10.0, val=2.0)
    t = train_epoch(model, 2, t, 10.0, until=30)
    epoch_left, run_left = model.eta(t)
    assert run_left == pytest.approx(epoch_left + 18 * 12.0, rel=0.02)
    model.apply(ev.ControlApplied(action=ev.ControlAction.STOP_AFTER_EPOCH, epoch=2, step=30, time=t))
    epoch_left, run_left = model.eta(t)
    assert epoch_left == pytest.approx(7.0 + 2.0, rel=0.02) and run_left == pytest.approx(epoch_left)


def test_a_new_phase_is_measured_afresh():
    """A probe on cached features is fast; fine-tuning is slow: from the phase change on, the ETA uses the
    fine-tuning speed, not the probe's."""
    model = RunModel("r")
    model.apply(started(time=0.0, epochs=4, steps_per_epoch=SPE, start_epoch=0))
    t = train_epoch(model, 1, 0.0, 100.0, val=0.5)
    model.apply(ev.PhaseChanged(epoch=2, phase="finetune", lr=0.01, time=t))
    t = train_epoch(model, 2, t, 4.0, until=20)
    epoch_left, run_left = model.eta(t)
    assert epoch_left == pytest.approx(80 / 4.0, rel=0.02)
    assert run_left == pytest.approx(20.0 + 2 * 25.0, rel=0.02)


def test_the_headless_progress_bar_shows_the_same_etas():
    """``optai-tui train`` on a terminal: its bar shows the epoch and run ETAs of the dashboard, and a new bar
    each epoch (rich's own estimate read the step count going back to 1 as progress, and knew no run ETA)."""
    import io

    from optai_tui.training.console import ConsoleSink

    out = io.StringIO()
    sink = ConsoleSink(stream=out, rich=True)
    feed = RunModel("r")  # the same stream as the dashboard's
    events: list[ev.Event] = []
    feed.apply = events.append  # type: ignore[method-assign]
    feed.epochs = 3
    events.append(started(time=0.0, epochs=3, steps_per_epoch=SPE, start_epoch=0))
    t = train_epoch(feed, 1, 0.0, 10.0, val=10.0)
    train_epoch(feed, 2, t, 10.0, until=10)
    for e in events:
        sink(e)
    task = sink.progress.tasks[0]
    assert task.completed == 10 and task.fields["epoch"] == 2
    assert task.fields["eta"] == "ETA epoch 19.0s, run 39.0s"
    sink.close()
