"""What torchrun left when a run's processes failed: which rank failed first, and why, in one line.

torchrun (``python -m torch.distributed.run``) stops every process of a run as soon as one exits with an error,
and prints a failure report: the first observed failure, then the others (the processes it stopped itself,
with SIGTERM). A process that raised wrote its error to the file torchrun named in its
``TORCHELASTIC_ERROR_FILE`` (under the run's ``torchrun/`` folder); a process killed by a signal wrote nothing.
The launcher (``runs/launch.py``) records the result as the run's ``RunFailed``.
"""

from __future__ import annotations

import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path

_BLOCK = re.compile(
    r"rank\s*:\s*(?P<rank>-?\d+)[^\n]*\n\s*exitcode\s*:\s*(?P<code>-?\d+)\s*\(pid:\s*(?P<pid>\d+)\)[^\n]*\n"
    r"\s*error_file\s*:\s*(?P<file>[^\n]*)\n"
)
# what a process reports when another one died under it: not the cause
_COLLATERAL = re.compile(
    r"gloo|nccl|connection (closed|reset)|broken pipe|DistBackendError|DistNetworkError|ProcessGroup|"
    r"Socket Timeout|timed out|peer",
    re.I,
)


@dataclass(frozen=True)
class RankFailure:
    rank: int
    exitcode: int
    pid: int
    message: str  # the process's error ("ValueError: ..."), or how it ended ("killed by SIGKILL")

    @property
    def collateral(self) -> bool:
        """Stopped by torchrun (SIGTERM) or failed in a collective because another process was gone."""
        return self.exitcode == -signal.SIGTERM or bool(_COLLATERAL.search(self.message))

    def line(self) -> str:
        return f"rank {self.rank} (pid {self.pid}) {self.message}"


def read_error_file(path: str | Path) -> str | None:
    """The one-line error a process wrote to its TORCHELASTIC_ERROR_FILE."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        msg = data["message"]
        msg = msg.get("message", "") if isinstance(msg, dict) else str(msg)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    lines = [ln for ln in str(msg).strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else None


def parse_failures(report: str) -> list[RankFailure]:
    """The failures of torchrun's report, first observed first (then in the report's order)."""
    root = report.rfind("Root Cause")
    blocks = list(_BLOCK.finditer(report))
    blocks.sort(key=lambda m: (0 if root >= 0 and m.start() > root else 1, m.start()))
    out: list[RankFailure] = []
    seen: set[int] = set()
    for m in blocks:
        rank, code, pid = int(m["rank"]), int(m["code"]), int(m["pid"])
        if rank in seen:
            continue
        seen.add(rank)
        file = m["file"].strip()
        message = read_error_file(file) if file and not file.startswith("<") else None
        if message is None:
            if code < 0:
                try:
                    name = signal.Signals(-code).name
                except ValueError:
                    name = f"signal {-code}"
                message = f"was killed by {name}"
            else:
                message = f"exited with code {code}"
        out.append(RankFailure(rank, code, pid, message))
    return out


def root_cause(failures: list[RankFailure]) -> RankFailure | None:
    """The failure that caused the others: the first that is not collateral (else the first)."""
    for f in failures:
        if not f.collateral:
            return f
    return failures[0] if failures else None


def failure_message(report: str, exitcode: int, log: Path) -> str:
    cause = root_cause(parse_failures(report))
    if cause is None and exitcode < 0:  # torchrun itself was killed (kill -9, the OOM killer): it reported nothing
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"torchrun was killed by {name} and its processes ended without recording why; see {log}"
    if cause is None:
        return f"the training processes failed (torchrun exit code {exitcode}); see {log}"
    return f"{cause.line()}; see {log}"
