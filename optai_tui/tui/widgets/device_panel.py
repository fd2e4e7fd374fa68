"""Device panel: the detected GPUs with their free/total memory, or the CPU and why there is no GPU."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from ..messages import DevicesReady


class DevicePanel(Static):
    """Asks the app's machine worker for the devices (it loads torch and probes the GPUs, which takes seconds)
    on a worker thread and posts DevicesReady. The screen calls :meth:`detect` once it has been drawn."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text("devices: detecting...", style="dim"), id=id)
        self.devices: list | None = None
        self.why_no_gpu: str | None = None

    @work(thread=True, exclusive=True, group="devices")
    def detect(self) -> None:
        from ...training.devinfo import DeviceInfo, device_from_dict
        from ..machine import MachineError

        worker = get_current_worker()
        try:
            reply = self.app.machine.call("devices", cancelled=lambda: worker.is_cancelled)
            if reply is None:
                return
            devices, why = [device_from_dict(d) for d in reply["devices"]], reply["why_no_gpu"]
        except (MachineError, KeyError, TypeError) as e:  # detection must never take the app down
            devices, why = [DeviceInfo("cpu", "CPU")], f"device detection failed: {e}"
        self.post_message(DevicesReady(devices, why))

    def on_devices_ready(self, message: DevicesReady) -> None:
        self.devices, self.why_no_gpu = message.devices, message.why_no_gpu
        self.update(self.render_devices(message.devices, message.why_no_gpu))

    @staticmethod
    def render_devices(devices: list, why_no_gpu: str | None) -> Text:
        t = Text()
        t.append("Devices\n", style="bold")
        for d in devices:
            t.append(f"{d.spec:<7}", style="bold green" if d.spec != "cpu" else "bold")
            # the whole name (the panel wraps it): a cut CPU or GPU model no longer says which one it is
            t.append(f" {d.name}\n" if len(d.name) <= 22 else f"\n{d.name}\n")
            smi = getattr(d, "smi_index", None)
            if smi is not None and f"cuda:{smi}" != d.spec:  # the run's numbering first, nvidia-smi's beside it
                t.append(f"        nvidia-smi GPU {smi}\n", style="dim")
            if not getattr(d, "usable", True):
                t.append("        not usable by this torch build\n", style="yellow")
            if d.total_mb:
                t.append(f"        {(d.free_mb or 0) / 1024:.1f} / {d.total_mb / 1024:.1f} GiB free\n")
        if why_no_gpu:
            t.append(f"no GPU: {why_no_gpu}", style="yellow")
        return t
