"""kill -9 of the training process at every write point of a run, then ``--resume``: the folder reads consistently
while it lies interrupted, and the resumed run ends with the records and the final weights (bit for bit) of a run
that was never interrupted.

The points are found in the reference run's trace (``OPTAI_FAULT_TRACE``): e.g. "the first write of best.pt after
the first EpochEnd", so the cases stay on the intended epoch whatever the data makes the best epoch.
"""

from __future__ import annotations

import pytest

from .conftest import assert_reads_consistently, assert_whole, resume_args, the_run, train_args

# (case, point, after this point..., ...seen this many times): the kill lands at the first `point` after that.
FIRST_PROCESS = [
    ("process.pid", "write.process.pid", None, 0),  # the run folder exists, nothing says who trains it
    ("RunStarted", "event.RunStarted", None, 0),  # half a line
    ("BatchEnd", "event.BatchEnd", None, 0),  # mid-epoch, before the first checkpoint (the run starts again)
    ("last.pt", "write.last.pt", "event.EpochEnd", 1),  # epoch 2's checkpoint written, not yet renamed
    ("best.pt", "write.best.pt", "event.EpochEnd", 1),  # last.pt is epoch 2's, best.pt not yet
    ("Checkpointed", "event.Checkpointed", "event.EpochEnd", 1),  # both files written, the log knows nothing
    ("EpochEnd", "event.EpochEnd", "event.EpochEnd", 1),  # half of epoch 2's EpochEnd line
    ("metrics.csv", "write.metrics.csv", "event.EpochEnd", 2),  # the log has epoch 2, the metrics not
    ("summary.json", "write.summary.json", "event.EpochEnd", 2),  # the log and the metrics have it, the summary not
    ("final last.pt", "event.Checkpointed", "event.EpochEnd", 2),  # the last epoch's checkpoint is all there is
    ("RunFinished", "event.RunFinished", None, 0),  # every epoch logged, no final event
    ("final summary", "write.summary.json", "event.RunFinished", 1),  # RunFinished logged, the summary says running
]


@pytest.mark.parametrize(("point", "after", "nth"), [c[1:] for c in FIRST_PROCESS], ids=[c[0] for c in FIRST_PROCESS])
def test_kill_at_a_write_point_then_resume(fork_server, preset_file, reference, tmp_path, point, after, nth):
    n = reference.hit(point, after, nth)
    if n == 0 and point == "write.best.pt":  # no better epoch after the first: its best.pt then
        n = reference.hit(point)
    assert n, f"the reference run never reached {point}"
    runs = tmp_path / "runs"
    code = fork_server.run(train_args(preset_file, runs), tmp_path / "killed.txt", OPTAI_FAULT=f"{point}:{n}")
    assert code == -9, (tmp_path / "killed.txt").read_text()
    run = the_run(runs)
    before = assert_reads_consistently(run)
    if point.startswith("write."):
        assert before.temps, "killed between the temp file and its rename: the temp file is there"
    code = fork_server.run(resume_args(run), tmp_path / "resumed.txt")
    out = (tmp_path / "resumed.txt").read_text()
    if point == "write.summary.json" and after == "event.RunFinished":
        assert code == 0 and "already completed all 3 epochs: nothing to resume" in out  # the log says so
    else:
        assert code == 0, out
    assert_whole(run, reference)


# Kills of the resuming process, one after the other on one folder: each leaves it consistent, the last resume
# completes it. The first process was killed with epoch 3's checkpoint written and not logged, so every resume
# also rebuilds that epoch's records from the checkpoint before it starts.
RESUME_CHAIN = [
    ("lock", 1),  # the lock just taken, nothing read or changed
    ("event.Checkpointed", 1),  # rebuilding epoch 3's records from last.pt: the first line
    ("event.EpochEnd", 1),  # half of the rebuilt EpochEnd
    ("write.process.pid", 1),
    ("write.metrics.csv", 1),  # the metrics rewritten from the log as the process begins
    ("event.RunStarted", 1),
]


def test_kills_while_resuming_then_resume(fork_server, preset_file, reference, tmp_path):
    runs = tmp_path / "runs"
    n = reference.hit("event.Checkpointed", "event.EpochEnd", 2)
    assert fork_server.run(train_args(preset_file, runs), tmp_path / "0.txt", OPTAI_FAULT=f"event.Checkpointed:{n}") == -9
    run = the_run(runs)
    assert_reads_consistently(run)
    for i, (point, n) in enumerate(RESUME_CHAIN, 1):
        out = tmp_path / f"{i}.txt"
        assert fork_server.run(resume_args(run), out, OPTAI_FAULT=f"{point}:{n}") == -9, (point, out.read_text())
        assert_reads_consistently(run)
    out = tmp_path / "last.txt"
    assert fork_server.run(resume_args(run), out) == 0, out.read_text()
    assert_whole(run, reference)
