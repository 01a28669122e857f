"""Figures of training runs: curves with a mean line and a band of ± one std over seeds."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import numpy as np

from ssmrl_lib.report.tables import mean_over_seeds


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
