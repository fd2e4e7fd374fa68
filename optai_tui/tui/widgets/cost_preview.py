"""Cost preview: parameters, MACs and estimated training memory of the configured model, and the
seconds per epoch measured by the most recent finished run of the same setup (model, width, dataset,
transfer mode, image size, device, batch size), scaled when only the number of training images differs
(``runs.estimate`` finds that run)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import work
from textual.widgets import Static
from textual.worker import get_current_worker

from ...config import RunConfig
from ...fmt import fmt_secs
from ...runs.cost import compute_cost, preview_classes  # noqa: F401  (computed by the machine worker; named here too)
from ...runs.estimate import features_cached
from ..messages import CostReady

DEBOUNCE_S = 0.3


def cost_key(cfg: RunConfig) -> tuple:
    return (
        cfg.model.arch,
        cfg.model.width,
        cfg.dataset_label(),
        cfg.effective_image_size(),
        cfg.train.batch_size,
        cfg.optim.name,
        cfg.optim.momentum > 0,
        cfg.transfer.mode,
        cfg.transfer.head,
        cfg.transfer.head_hidden,
        cfg.transfer.backbone_lr_mult == 0,
        cfg.train.device,
        # the training set and the cached-features fast path decide which past runs are comparable
        cfg.data.subset,
        cfg.data.val_split,
        features_cached(cfg),
        cfg.train.world_size(),  # several GPUs: the memory is per GPU, for its share of the batch
    )


def _num(n: float, unit: str = "") -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.2f}{suffix}{unit}"
    return f"{n:.0f}{unit}"


class CostPreview(Static):
    """Updates (debounced) when the model, input size or batch changes: a worker thread asks the app's machine
    worker (``runs/machine.py``: building the model needs torch, which the TUI's process does not load).

    Until the screen sets :attr:`ready` (the devices are known: the worker has loaded torch), the preview keeps
    the latest config and says it is waiting."""

    def __init__(self, runs_dir: Path | None = None, *, id: str | None = None) -> None:
        super().__init__("cost: -", id=id)
        self.runs_dir = runs_dir
        self.devices: list | None = None
        self._key: tuple | None = None
        self.last: dict[str, Any] | None = None
        self.last_key: tuple | None = None
        self._stale = False  # the measured seconds may have changed since ``last`` was computed
        self.ready = False  # the devices are known (the machine worker has loaded torch): the preview may ask

    def show_for(self, cfg: RunConfig | None) -> None:
        """Preview ``cfg``; None (the form does not validate) blanks it: numbers of another config would mislead."""
        if cfg is None:
            self._key = None  # a computation under way is for another config: its answer is dropped
            self.update(Text("cost: fix the form first", style="dim"))
            return
        if not self.ready:
            self.update(Text(f"{cfg.model.arch} x{cfg.model.width:g}: loading torch...", style="dim"))
            return
        key = cost_key(cfg)
        if key == self._key:
            return
        self._key = key
        if key == self.last_key and self.last is not None and not self._stale:  # back to the config last computed
            self.update(self.render_cost(key, self.last))
            return
        self._stale = False
        self.update(Text(f"{cfg.model.arch} x{cfg.model.width:g}: computing...", style="dim"))
        self._compute(key, cfg)

    def refresh_measured(self) -> None:
        """Compute again at the next ``show_for`` (a run finished: there may be a new measurement)."""
        self._key = None
        self._stale = True

    @work(thread=True, exclusive=True, group="cost")
    def _compute(self, key: tuple, cfg: RunConfig) -> None:
        from ...config import config_to_dict
        from ...training.devinfo import device_to_dict
        from ..machine import MachineError

        time.sleep(DEBOUNCE_S)
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        devices = [device_to_dict(d) for d in self.devices] if self.devices else None
        try:  # the machine worker computes it (building a model needs torch)
            reply = self.app.machine.call("cost", config=config_to_dict(cfg), runs_dir=str(self.runs_dir) if self.runs_dir else None,
                                          devices=devices, cancelled=lambda: worker.is_cancelled)
            if reply is None:
                return
            result = reply["result"] if "result" in reply else {"error": reply.get("error", "no answer")}
        except MachineError as e:  # a preview must never take the app down
            result = {"error": f"the estimating process failed: {e}"}
        if not worker.is_cancelled:
            self.post_message(CostReady(key, result))

    def on_cost_ready(self, message: CostReady) -> None:
        message.stop()
        if message.key != self._key:
            return
        self.last, self.last_key = message.result, message.key
        self.update(self.render_cost(message.key, message.result))

    @staticmethod
    def render_cost(key: tuple, r: dict[str, Any]) -> Text:
        arch, width, _ds, _size, batch = key[:5]
        t = Text()
        t.append(f"{arch} x{width:g}\n", style="bold")
        if "error" in r:
            t.append(f"cannot build: {r['error']}", style="red")
            return t
        params = _num(r["params"])
        if r["trainable"] != r["params"]:
            params += f" ({_num(r['trainable'])} trained{', then all' if r.get('then_all') else ''})"
        t.append(f"params  {params}\n")
        classes = f", {r['num_classes']} classes" if r.get("folder_classes") else ""  # an image folder's own
        t.append(f"MACs    {_num(r['macs'])} / image @{r['image_size']}px{classes}\n")
        if r.get("world"):
            t.append(f"memory  ~{r['memory_mb']:,.0f} MiB per GPU @ batch {r['per_gpu_batch']} ({batch} / {r['world']} GPUs)\n")
        else:
            t.append(f"memory  ~{r['memory_mb']:,.0f} MiB @ batch {batch}\n")
        if r.get("scaled_to"):
            t.append(f"epoch   ~{fmt_secs(r['seconds_per_epoch'])} scaled from {r['measured_images']:,} img", style="green")
        elif r.get("seconds_per_epoch"):
            imgs = f", {r['measured_images']:,} img" if r.get("measured_images") else ""
            t.append(f"epoch   {fmt_secs(r['seconds_per_epoch'])} measured{imgs}", style="green")
        else:
            t.append("epoch   not measured yet", style="dim")
        return t
