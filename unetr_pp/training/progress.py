"""Training log (`training_log_<date>.txt`, also printed) and `progress.png` (losses, pseudo-Dice + EMA, LR, time)."""
from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from unetr_pp.utilities.files import atomic_path

PLOT_KEYS = ("train_loss", "val_loss", "pseudo_dice", "ema_pseudo_dice", "lr", "epoch_time")


def empty_plot_stuff() -> dict[str, list[float]]:
    """Per-epoch history lists (one value per finished epoch), stored in checkpoints as `plot_stuff`."""
    return {key: [] for key in PLOT_KEYS}


class TrainingLog:
    """Appends timestamped lines to `<folder>/training_log_<date>.txt` (when `folder` is given) and prints them."""

    def __init__(self, folder: Path | None, echo: bool = True) -> None:
        self.echo = echo
        self.path = None
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / f"training_log_{datetime.now().strftime('%Y_%m_%d_%H_%M_%S')}.txt"

    def __call__(self, *parts: object) -> None:
        """Write one line `<time>: parts...`."""
        line = f"{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}: " + " ".join(str(p) for p in parts)
        if self.echo:
            print(line, flush=True)
        if self.path is not None:
            with open(self.path, "a") as handle:
                handle.write(line + "\n")


def plot_progress(plot_stuff: dict[str, list[float]], path: Path) -> None:
    """Write progress.png: train/val loss, pseudo-Dice and its EMA, learning rate, epoch time per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = list(range(1, len(plot_stuff["train_loss"]) + 1))
    fig, axes = plt.subplots(3, 1, figsize=(10, 12))
    ax = axes[0]
    ax.plot(epochs, plot_stuff["train_loss"], color="b", label="train loss")
    ax.plot(epochs, plot_stuff["val_loss"], color="r", label="val loss")
    ax.set_ylabel("loss")
    dice_ax = ax.twinx()
    dice_ax.plot(epochs, _finite(plot_stuff["pseudo_dice"]), color="g", ls="dotted", label="pseudo Dice")
    dice_ax.plot(epochs, _finite(plot_stuff["ema_pseudo_dice"]), color="g", label="pseudo Dice (EMA)")
    dice_ax.set_ylabel("pseudo Dice")
    ax.legend(loc="upper left")
    dice_ax.legend(loc="upper right")
    axes[1].plot(epochs, plot_stuff["lr"], color="b")
    axes[1].set_ylabel("learning rate")
    axes[2].plot(epochs, plot_stuff["epoch_time"], color="b")
    axes[2].set_ylabel("epoch time [s]")
    axes[2].set_xlabel("epoch")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)


def _finite(values: list[float]) -> list[float]:
    return [v if v is not None and math.isfinite(v) else float("nan") for v in values]
