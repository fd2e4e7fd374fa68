"""Pick the GPUs of a run from the detected list: ``train.gpus`` and ``train.device`` set from a check list.

One GPU picked trains in one process on it (``train.device cuda:N``, ``train.gpus 1``); several start one
process each under torchrun (``train.gpus`` the first N as a count, any other choice as the list of indices,
``train.device cuda``). Opened with enter on the ``train.gpus`` field of the setup form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, SelectionList
from textual.widgets.selection_list import Selection

from .dialog import HELP, dialog_footer


def _cuda_index(spec: str) -> int | None:
    return int(spec[5:]) if spec.startswith("cuda:") and spec[5:].isdigit() else None


def parse_gpus(raw: Any) -> int | list[int] | None:
    """The form's ``train.gpus`` text as a count or a list of indices (None: not readable), read as the schema reads it."""
    from ...config import parse_gpus_text

    try:
        return parse_gpus_text(str(raw))
    except ValueError:
        return None


def initial_selection(devices: Sequence, device: str, gpus_raw: Any) -> list[int]:
    """The CUDA indices the form's values train on now, as far as they name detected usable GPUs: a list its
    indices, a count above one the first N (torchrun's local ranks), one process the GPU ``train.device``
    names (auto or cuda: the usable GPU with the most free memory)."""
    from ...training.devinfo import best_gpu, usable_cuda_indices

    usable = usable_cuda_indices(devices)
    gpus = parse_gpus(gpus_raw)
    device = str(device).strip().lower()
    if gpus is None:  # text the schema refuses: nothing picked yet
        return []
    if isinstance(gpus, list):
        return [i for i in gpus if i in usable]
    if isinstance(gpus, int) and gpus > 1:
        return [i for i in range(gpus) if i in usable] if device in ("auto", "cuda") else []
    if _cuda_index(device) is not None:
        return [i for i in [_cuda_index(device)] if i in usable]
    if device in ("auto", "cuda"):
        best = best_gpu(devices)
        return [_cuda_index(best)] if best else []  # type: ignore[list-item]
    return []


def picked_values(indices: Sequence[int], device: str) -> tuple[str, str]:
    """(train.device, train.gpus) for the picked CUDA indices (at least one)."""
    picked = sorted(set(indices))
    if not picked:
        raise ValueError("pick at least one GPU")
    if len(picked) == 1:
        return f"cuda:{picked[0]}", "1"
    dev = device if device in ("auto", "cuda") else "cuda"
    if picked == list(range(len(picked))):
        return dev, str(len(picked))  # the first N: a count, as on the command line
    return dev, ",".join(str(i) for i in picked)


def describe_pick(indices: Sequence[int], batch_size: int | None) -> str:
    """What the pick means for the run: processes and the per-GPU share of the global batch."""
    n = len(set(indices))
    if n == 0:
        return "pick at least one GPU (space)"
    if n == 1:
        return f"1 process on cuda:{indices[0]}" + (f", batch {batch_size}" if batch_size else "")
    out = f"{n} processes (torchrun, DDP)"
    if batch_size:
        if batch_size % n:
            out += f"; global batch {batch_size} does not divide by {n}: change train.batch_size"
        else:
            out += f", global batch {batch_size} = {batch_size // n} per GPU"
    return out


def _label(d) -> Text:
    t = Text()
    t.append(f"{d.spec:<8}", style="bold")
    t.append(d.name)
    if d.total_mb:
        t.append(f"  {(d.free_mb or 0) / 1024:.1f}/{d.total_mb / 1024:.1f} GiB free", style="dim")
    if not getattr(d, "usable", True):
        t.append("  unusable with this torch", style="yellow")
    return t


def workers_selection(devices: Sequence, raw: Any) -> list[int]:
    """The sweep's ``--gpus`` text (``0,1``, ``all`` or empty) as the usable CUDA indices it names."""
    from ...training.devinfo import usable_cuda_indices

    usable = usable_cuda_indices(devices)
    text = str(raw or "").strip().lower()
    if text == "all":
        return usable
    gpus = parse_gpus(text) if text else None
    if isinstance(gpus, int):
        gpus = [gpus]
    return [i for i in gpus or [] if i in usable]


def describe_workers(indices: Sequence[int]) -> str:
    n = len(set(indices))
    if n == 0:
        return "none picked: trials run one at a time on train.device"
    return f"{n} worker{'s' if n != 1 else ''}: one trial at a time on each of " + ", ".join(f"cuda:{i}" for i in sorted(set(indices)))


class GpuPicker(ModalScreen[tuple[str, str] | None]):
    """A check list of the detected CUDA GPUs; enter returns (train.device, train.gpus), escape None.
    For a sweep (``workers=True``): ("", the picked indices as ``0,1``; empty: train.device)."""

    BINDINGS = [
        Binding("escape", "dismiss(None)", "Cancel"),
        Binding("enter", "ok", "OK", priority=True),
        Binding("a", "all", "All"),
        Binding("n", "none", "None"),
        HELP,
    ]

    def __init__(
        self,
        devices: Sequence,
        *,
        device: str = "auto",
        gpus: Any = "1",
        batch_size: int | None = None,
        why_no_gpu: str | None = None,
        workers: bool = False,
    ) -> None:
        super().__init__()
        self.devices = [d for d in devices if _cuda_index(d.spec) is not None]
        self.device = str(device).strip().lower()
        self.batch_size = batch_size
        self.why_no_gpu = why_no_gpu
        self.for_sweep = workers
        self.start = workers_selection(devices, gpus) if workers else initial_selection(devices, device, gpus)

    def _plan(self, indices: Sequence[int]) -> str:
        return describe_workers(indices) if self.for_sweep else describe_pick(indices, self.batch_size)

    def compose(self) -> ComposeResult:
        yield dialog_footer()
        with Vertical(classes="dialog", id="gpu-dialog"):
            yield Label("Sweep workers: one per GPU" if self.for_sweep else "Train on the GPUs", classes="dialog-title")
            if not self.devices:
                why = f": {self.why_no_gpu}" if self.why_no_gpu else ""
                yield Label(
                    f"No CUDA GPU detected{why}. On the CPU, train.gpus is a count of gloo processes: type it in the field (e.g. 2).",
                    id="gpu-none",
                    classes="dialog-text",
                    markup=False,
                )
                yield Label("enter/esc back", classes="dialog-keys")
                return
            items = [
                Selection(_label(d), _cuda_index(d.spec), _cuda_index(d.spec) in self.start, disabled=not getattr(d, "usable", True))
                for d in self.devices
            ]
            yield SelectionList[int](*items, id="gpu-list")
            yield Label(self._plan(self.start), id="gpu-plan", classes="dialog-text", markup=False)
            yield Label("space pick   a all   n none   enter ok   esc cancel", classes="dialog-keys")

    def on_mount(self) -> None:
        if self.devices:
            self.query_one(SelectionList).focus()

    @property
    def picked(self) -> list[int]:
        if not self.devices:
            return []
        return sorted(self.query_one(SelectionList).selected)

    def on_selection_list_selected_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        self.query_one("#gpu-plan", Label).update(self._plan(self.picked))

    def action_all(self) -> None:
        if self.devices:  # every usable GPU (select_all would pick the disabled ones too)
            sl = self.query_one(SelectionList)
            for d in self.devices:
                if getattr(d, "usable", True):
                    sl.select(_cuda_index(d.spec))

    def action_none(self) -> None:
        if self.devices:
            self.query_one(SelectionList).deselect_all()

    def action_ok(self) -> None:
        if not self.devices:
            self.dismiss(None)
            return
        if self.for_sweep:
            self.dismiss(("", ",".join(str(i) for i in self.picked)))
            return
        if not self.picked:
            self.query_one("#gpu-plan", Label).update("! pick at least one GPU (space), or esc to keep the form as it is")
            return
        self.dismiss(picked_values(self.picked, self.device))
