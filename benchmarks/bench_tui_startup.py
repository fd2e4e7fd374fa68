"""TUI start-up benchmark: time to the first screen and resident memory while following a run.

Each app runs as a user runs it: a fresh process on a real pseudo-terminal of 80x24 (``python -m optai_tui``),
its output read back until a text of the screen appears. In the same invocation, the baseline: a bare
Textual app showing one label, started the same way.

1. Time to first screen: from the process start to the screen's text on the terminal (the setup form's
   first section, the baseline's label). The median of ``--repeat`` starts of each; the ratio is app / baseline.
2. Memory while following a run: a tiny run trains in its own detached process (``optai-tui train``), the
   app is started with ``optai-tui attach RUN`` and follows it for ``--follow`` seconds; its peak RSS
   (VmHWM) against the baseline's, and whether the app process mapped torch's library (it should not:
   following a run needs no torch).

    python benchmarks/bench_tui_startup.py [--repeat 3] [--follow 8]

Targets (issue 13): first screen under 1.5 s, RSS while following under 400 MB.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)")

BASELINE = """
from textual.app import App
from textual.widgets import Label

class Bare(App):
    def compose(self):
        yield Label("baseline ready")

Bare().run()
"""


class PtyApp:
    """A process on its own pseudo-terminal of ``size``; ``wait_text`` reads its output until a text shows."""

    def __init__(self, argv: list[str], size: tuple[int, int] = (80, 24), env: dict | None = None) -> None:
        self.t0 = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # the child: the pty is its terminal
            try:
                os.chdir(ROOT)
                os.execvpe(argv[0], argv, env or os.environ)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        cols, rows = size
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.screen = b""

    def wait_text(self, text: str, timeout: float = 60.0) -> float:
        """Seconds from the start of the process to ``text`` appearing on its terminal."""
        want = text.encode()
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    break
                self.screen += chunk
                plain = ANSI.sub(b"", self.screen)
                if want in plain:
                    self.cpu_at_text = self.cpu_seconds()
                    return time.perf_counter() - self.t0
        tail = ANSI.sub(b"", self.screen)[-600:].decode(errors="replace")
        raise RuntimeError(f"{text!r} did not appear within {timeout:.0f}s; the terminal showed: ...{tail}")

    def drain(self, seconds: float) -> None:
        """Keep reading its output (a terminal that is read) for ``seconds``."""
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    return

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far: less noisy than wall time on a busy machine."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def status(self, field: str) -> int:
        """A ``/proc/PID/status`` memory field (VmRSS, VmHWM) in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def maps_torch(self) -> bool:
        return "libtorch" in Path(f"/proc/{self.pid}/maps").read_text()

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline:
            self.drain(0.05)
            if os.waitpid(self.pid, os.WNOHANG)[0]:
                break
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def env_for(runs_dir: Path) -> dict:
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24", OPTAI_RUNS_DIR=str(runs_dir))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def first_screen(argv: list[str], marker: str, env: dict, repeat: int) -> tuple[list[float], list[float]]:
    """Wall seconds and CPU seconds to the first screen, for each of ``repeat`` starts."""
    times, cpu = [], []
    for _ in range(repeat):
        app = PtyApp(argv, env=env)
        try:
            times.append(app.wait_text(marker))
            cpu.append(app.cpu_at_text)
        finally:
            app.close()
    return times, cpu


def follow_rss(argv: list[str], marker: str, env: dict, seconds: float) -> tuple[int, bool]:
    app = PtyApp(argv, env=env)
    try:
        app.wait_text(marker)
        app.drain(seconds)
        return app.status("VmHWM"), app.maps_torch()
    finally:
        app.close()


def start_training(runs_dir: Path, env: dict, epochs: int) -> tuple[subprocess.Popen, Path]:
    """A tiny CPU run in the background, long enough to be followed."""
    sets = {
        "name": "bench-follow",
        "data.dataset": "shapes",
        "data.subset": 2048,
        "data.val_split": 0.25,
        "data.image_size": 16,
        "model.arch": "resnet18",
        "model.width": 0.125,
        "train.epochs": epochs,
        "train.batch_size": 64,
        "train.device": "cpu",
        "train.progress_every": 0.2,
    }
    argv = [sys.executable, "-m", "optai_tui", "train", "--plain", "--runs-dir", str(runs_dir)]
    for k, v in sets.items():
        argv += ["--set", f"{k}={v}"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        runs = [p for p in runs_dir.iterdir() if (p / "events.jsonl").is_file()] if runs_dir.is_dir() else []
        if runs and "BatchEnd" in (runs[0] / "events.jsonl").read_text():
            return proc, runs[0]
        if proc.poll() is not None:
            raise RuntimeError(f"the training process ended early (exit {proc.returncode})")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the run did not start training within 120 s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="starts of each app for the time to first screen (median)")
    ap.add_argument("--follow", type=float, default=8.0, help="seconds the app follows the run before its memory is read")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="optai-bench-startup-") as tmp:
        tmpd = Path(tmp)
        runs_dir = tmpd / "runs"
        runs_dir.mkdir()
        env = env_for(runs_dir)
        bare = tmpd / "bare_app.py"
        bare.write_text(BASELINE)
        py = sys.executable

        # warm the file cache for both, so that neither pays for the first read of the libraries
        first_screen([py, str(bare)], "baseline ready", env, 1)
        first_screen([py, "-m", "optai_tui"], "Run", env, 1)

        base_t, base_c = first_screen([py, str(bare)], "baseline ready", env, args.repeat)
        app_t, app_c = first_screen([py, "-m", "optai_tui"], "Data", env, args.repeat)
        tb, ta = statistics.median(base_t), statistics.median(app_t)
        cb, ca = statistics.median(base_c), statistics.median(app_c)
        print(f"time to first screen (80x24, median of {args.repeat}; CPU seconds of the process by then):")
        print(f"  bare Textual app (one label)  {tb:6.2f} s   cpu {cb:5.2f} s   [{', '.join(f'{t:.2f}' for t in base_t)}]")
        print(f"  optai-tui (setup form)        {ta:6.2f} s   cpu {ca:5.2f} s   [{', '.join(f'{t:.2f}' for t in app_t)}]")
        print(f"  ratio                         {ta / tb:6.2f} x   cpu {ca / cb:5.2f} x   (target: under 1.5 s)")

        base_rss, _ = follow_rss([py, str(bare)], "baseline ready", env, args.follow)
        trainer, run_path = start_training(runs_dir, env, epochs=50)
        try:
            app_rss, torch_mapped = follow_rss([py, "-m", "optai_tui", "attach", run_path.name], "Stop now", env, args.follow)
        finally:
            os.killpg(trainer.pid, signal.SIGTERM)
            trainer.wait(timeout=60)
        mb = 1024 * 1024
        print(f"peak resident memory (VmHWM), the app following a training run for {args.follow:.0f} s:")
        print(f"  bare Textual app (one label)  {base_rss / mb:6.0f} MB")
        print(f"  optai-tui attach RUN          {app_rss / mb:6.0f} MB   torch loaded: {'yes' if torch_mapped else 'no'}")
        print(f"  ratio                         {app_rss / base_rss:6.2f} x   (target: under 400 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
