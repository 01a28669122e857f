"""Figures of training runs: curves with a mean line and a band of ± one std over seeds."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ssmrl_lib.report import verdicts
from ssmrl_lib.report.tables import mean_over_seeds
from ssmrl_lib.report.verdicts import Milestone


def _grouped(results: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for result in results:
        config = result["config"]
        groups.setdefault((config["env"], config["model_name"]), []).append(result)
    return groups


def _band(ax: plt.Axes, x: np.ndarray, curves: list[np.ndarray], label: str) -> None:
    mean, std = mean_over_seeds(curves)
    ax.plot(x, mean, label=label)
    ax.fill_between(x, mean - std, mean + std, alpha=0.25)


def plot_offline_training_curves(results: list[dict[str, Any]]) -> plt.Figure:
    """Training loss (top) and normalized score during training (bottom), one column per env."""
    groups = _grouped(results)
    envs = sorted({env for env, _ in groups})
    fig, axes = plt.subplots(2, len(envs), figsize=(4.2 * len(envs), 6.4), squeeze=False)
    for column, env in enumerate(envs):
        loss_ax, score_ax = axes[0, column], axes[1, column]
        for (group_env, model), runs in groups.items():
            if group_env != env:
                continue
            steps = np.asarray(runs[0]["loss_curve"]["step"])
            _band(loss_ax, steps, [np.asarray(r["loss_curve"]["loss"]) for r in runs], model)
            evals = [r["evaluations_during_training"] for r in runs]
            eval_steps = np.asarray([e["step"] for e in evals[0]])
            _band(score_ax, eval_steps, [np.asarray([e["score_mean"] for e in ev]) for ev in evals],
                  model)
        loss_ax.set(title=env, xlabel="training step", ylabel="action MSE")
        score_ax.set(xlabel="training step", ylabel="normalized score")
        loss_ax.legend()
    fig.tight_layout()
    return fig


def plot_milestone_curves(curves: dict[str, dict[str, list[Milestone]]], schedule: float,
                          milestones: tuple[int, ...], ylabel: str) -> plt.Figure:
    """One panel per task (``curves``: task -> label -> a model's curve): the metric at every
    milestone all of the model's seeds reached, mean and 95 % interval over seeds, drawn over
    the paper's whole ``schedule`` (dotted: the plan's ``milestones``)."""
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4), squeeze=False)
    for ax, (task, by_model) in zip(axes[0], curves.items(), strict=True):
        for label, points in by_model.items():
            if not points:
                continue
            steps = [p.step for p in points]
            seeds = len(points[-1].values)
            line, = ax.plot(steps, [p.mean for p in points], marker="o",
                            label=f"{label} ({seeds} seed{'s' * (seeds != 1)})")
            intervals = [verdicts.mean_interval(p.values) for p in points]
            if all(interval is not None for interval in intervals):
                ax.fill_between(steps, [i[0] for i in intervals], [i[1] for i in intervals],
                                alpha=0.2, color=line.get_color())
        for milestone in milestones:
            ax.axvline(milestone, color="grey", lw=0.6, ls=":")
        ax.set(title=task, xlim=(0, schedule), xlabel="training step", ylabel=ylabel)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
