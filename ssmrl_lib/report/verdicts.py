"""The one verdict rule of the book: when a claim is decided, and which way.

Every chapter's verdict column and the Claims page call ``judge_value`` (our number against a
paper's) or ``judge_relation`` (a relation between two of our models, such as "S5 beats GRU" or
"DT and Mamba perform similarly"); ``RULE`` states the rule as the Claims page prints it.
A curve is a list of ``Milestone``s: the metric at each milestone every seed reached, one value
per seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95

RULE = """\
Each claim rests on a learning curve: our metric at every milestone that
all seeds of a run reached, one value per seed. Intervals are 95 % Student-*t* intervals over
seeds: of the mean for a number, of the difference of two means (Welch) for a relation between
two models; a single seed gives no interval and decides nothing.

- **Budget.** Below the paper's budget a claim is decided only when its curve has flattened: the
  last two milestones' means each lie within the other's 95 % interval. Otherwise it is
  *inconclusive at X % of the paper's budget*. At the paper's budget the last milestone decides.
- **A number** (ours against the paper's) is *reproduced* when our interval overlaps the paper's
  range (mean ± std, or the stated tolerance for a value read off a figure, ≈), *not reproduced*
  when it misses it.
- **A relation** ("S5 beats GRU", "DT and Mamba perform similarly") is judged by the interval on
  the difference, not by each number against the paper's: *beats* is reproduced when the whole
  interval is above 0, not reproduced when it is below 0; *similar* is reproduced when the
  interval lies within ± the claim's margin, not reproduced when it lies wholly outside it. An
  interval that straddles leaves the claim *undecided*.
- Claims whose setup differs from the paper's (other task, data, trials or hardware) are *not
  comparable*; our number is shown for orientation only.
"""

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"


@dataclass(frozen=True)
class Milestone:
    """A metric at one point of the training schedule: one value per seed."""

    step: float
    values: tuple[float, ...]

    @property
    def finite(self) -> np.ndarray:
        array = np.asarray(self.values, dtype=float)
        return array[np.isfinite(array)]

    @property
    def mean(self) -> float:
        finite = self.finite
        return float(finite.mean()) if len(finite) else math.nan


@dataclass(frozen=True)
class Verdict:
    """A verdict: its label, whether it is decided, and (when decided) whether it holds."""

    label: str
    decided: bool = False
    reproduced: bool | None = None

    def __str__(self) -> str:
        return self.label


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE
                  ) -> tuple[float, float] | None:
    """Student-t interval of the mean over seeds; None with fewer than two finite values."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if len(array) < 2:
        return None
    if np.ptp(array) == 0:  # every seed the same: a zero-width interval
        return float(array[0]), float(array[0])
    low, high = stats.t.interval(confidence, df=len(array) - 1, loc=array.mean(),
                                 scale=stats.sem(array))
    return float(low), float(high)


def difference_interval(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE
                        ) -> tuple[float, float] | None:
    """Welch t interval of mean(a) − mean(b) over seeds; None unless both have two values."""
    a, b = (np.asarray(x, dtype=float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < 2 or len(b) < 2:
        return None
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        gap = float(a.mean() - b.mean())
        return gap, gap
    result = stats.ttest_ind(a, b, equal_var=False)
    interval = result.confidence_interval(confidence)
    return float(interval.low), float(interval.high)


def has_flattened(curve: Sequence[Milestone]) -> bool:
    """True when the last two milestones' means each lie within the other's 95 % interval."""
    if len(curve) < 2:
        return False
    before, last = curve[-2], curve[-1]
    intervals = mean_interval(before.values), mean_interval(last.values)
    if intervals[0] is None or intervals[1] is None:
        return False
    return (intervals[0][0] <= last.mean <= intervals[0][1]
            and intervals[1][0] <= before.mean <= intervals[1][1])


def budget_text(fraction: float) -> str:
    """``0.4 %`` of a budget, with two significant figures (``100 %`` at or past it)."""
    if fraction >= 1:
        return "100 %"
    return f"{100 * fraction:.2g} %"


def _gate(curves: Sequence[Sequence[Milestone]], budget_fraction: float) -> Verdict | None:
    """The verdict that stops a claim before its numbers are compared, if any."""
    if any(not curve for curve in curves):
        return Verdict("not run")
    if any(len(curve[-1].finite) < 2 for curve in curves):
        seeds = min(len(curve[-1].finite) for curve in curves)
        return Verdict(f"no interval: {seeds} seed{'s' if seeds != 1 else ''}")
    if budget_fraction < 1 and not all(has_flattened(curve) for curve in curves):
        return Verdict(f"inconclusive at {budget_text(budget_fraction)} of the paper's budget")
    return None


def judge_value(curve: Sequence[Milestone], paper_low: float, paper_high: float,
                budget_fraction: float) -> Verdict:
    """Our number against the paper's range ``[paper_low, paper_high]``."""
    stop = _gate([curve], budget_fraction)
    if stop is not None:
        return stop
    low, high = mean_interval(curve[-1].values)
    if high < paper_low:
        return Verdict(f"{NOT_REPRODUCED} (below the paper)", decided=True, reproduced=False)
    if low > paper_high:
        return Verdict(f"{NOT_REPRODUCED} (above the paper)", decided=True, reproduced=False)
    return Verdict(REPRODUCED, decided=True, reproduced=True)


def judge_relation(curve_a: Sequence[Milestone], curve_b: Sequence[Milestone], relation: str,
                   budget_fraction: float, margin: float = 0.0) -> Verdict:
    """A relation between two models: ``"beats"`` (A > B) or ``"similar"`` (|A − B| ≤ margin),
    judged by the Welch interval on A − B at the last milestone both curves reached."""
    if relation not in ("beats", "similar"):
        raise ValueError(f"relation must be 'beats' or 'similar', not {relation!r}")
    stop = _gate([curve_a, curve_b], budget_fraction)
    if stop is not None:
        return stop
    low, high = difference_interval(curve_a[-1].values, curve_b[-1].values)
    if relation == "beats":
        if low > 0:
            return Verdict(REPRODUCED, decided=True, reproduced=True)
        if high < 0:
            return Verdict(f"{NOT_REPRODUCED} (the other is ahead)", decided=True,
                           reproduced=False)
        return Verdict("undecided: the interval on the difference contains 0")
    if -margin <= low and high <= margin:
        return Verdict(REPRODUCED, decided=True, reproduced=True)
    if high < -margin or low > margin:
        return Verdict(f"{NOT_REPRODUCED} (they differ by more than {margin:g})", decided=True,
                       reproduced=False)
    return Verdict(f"undecided: the interval on the difference straddles ±{margin:g}")


def interval_text(interval: tuple[float, float] | None, digits: int = 2) -> str:
    """``[0.12, 0.34]``, or ``no interval`` for a single seed."""
    if interval is None:
        return "no interval"
    return f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def summary_text(milestone: Milestone, digits: int = 2) -> str:
    """``0.45 [0.30, 0.60] (3 seeds)``: mean, 95 % interval over seeds, seed count."""
    finite = milestone.finite
    if not len(finite):
        return "—"
    seeds = f"{len(finite)} seed{'s' if len(finite) != 1 else ''}"
    interval = mean_interval(finite)
    if interval is None:
        return f"{finite.mean():.{digits}f} ({seeds})"
    return f"{finite.mean():.{digits}f} {interval_text(interval, digits)} ({seeds})"
