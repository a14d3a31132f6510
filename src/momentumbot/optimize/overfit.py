"""How likely a sweep's best result is luck: the probability of backtest overfitting by
combinatorially symmetric cross-validation, and the deflated Sharpe ratio.

- PBO (Bailey, Borwein, López de Prado and Zhu, "The Probability of Backtest Overfitting",
  Journal of Computational Finance 20(4), 2017; SSRN 2326253, 2015). The sessions are cut
  into S equal blocks; for every way of taking S/2 of them as in-sample, the trial with the
  best in-sample Sharpe ratio is ranked among all trials on the other half. PBO is the
  share of splits where it lands in the bottom half (logit of its relative rank <= 0).
- DSR (Bailey and López de Prado, "The Deflated Sharpe Ratio: Correcting for Selection
  Bias, Backtest Overfitting and Non-Normality", Journal of Portfolio Management 40(5),
  2014). The probability that the best trial's true Sharpe ratio is above the largest one
  expected from N trials of no skill, given the spread of the trials' Sharpe ratios, the
  number of sessions and the skew and kurtosis of the best trial's returns.

Both take daily returns, one column per trial, and use per-session (not annualised)
Sharpe ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
PBO_LIMIT = 0.5  # PBO at or above: the best in-sample choice is as likely as not below median
DSR_LEVEL = 0.95  # DSR below: the best Sharpe ratio is not significant after N trials
_CHUNK = 2048


@dataclass(frozen=True)
class Overfitting:
    """The two statistics over one sweep, and what they say."""

    trials: int
    sessions: int
    pbo: float | None
    pbo_splits: int  # S, the number of blocks
    pbo_combinations: int
    logits: np.ndarray  # one per combination
    dsr: float | None
    best_sharpe: float | None  # per session, of the trial with the best Sharpe
    expected_max_sharpe: float | None  # SR0: the best Sharpe of N no-skill trials

    @property
    def overfit(self) -> bool | None:
        """True when either statistic says the best result is likely luck."""
        verdicts = []
        if self.pbo is not None:
            verdicts.append(self.pbo >= PBO_LIMIT)
        if self.dsr is not None:
            verdicts.append(self.dsr < DSR_LEVEL)
        return any(verdicts) if verdicts else None

    def verdict(self) -> str:
        if self.overfit is None:
            return "not enough sessions or trials to tell"
        parts = []
        if self.pbo is not None:
            parts.append(f"PBO {self.pbo:.3f}" + (" (>= 0.5)" if self.pbo >= PBO_LIMIT else ""))
        if self.dsr is not None:
            parts.append(f"DSR {self.dsr:.3f}" + (" (< 0.95)" if self.dsr < DSR_LEVEL else ""))
        head = (
            "likely overfit: the best parameters are not distinguishable from luck"
            if self.overfit
            else "the best parameters hold up out of sample and beat luck"
        )
        return f"{head} ({', '.join(parts)})"

    def as_dict(self) -> dict[str, object]:
        return {
            "trials": self.trials,
            "sessions": self.sessions,
            "pbo": self.pbo,
            "pbo_splits": self.pbo_splits,
            "pbo_combinations": self.pbo_combinations,
            "dsr": self.dsr,
            "best_sharpe_per_session": self.best_sharpe,
            "expected_max_sharpe_per_session": self.expected_max_sharpe,
            "overfit": self.overfit,
            "verdict": self.verdict(),
        }


def _sharpe(total: np.ndarray, squares: np.ndarray, n: int) -> np.ndarray:
    """Per-period Sharpe from sums (0 where the deviation is 0)."""
    mean = total / n
    var = np.maximum(squares - total * mean, 0.0) / max(n - 1, 1)
    std = np.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(std > 1e-12, mean / std, 0.0)
    return np.asarray(out)


def pbo_cscv(returns: np.ndarray, splits: int = 16) -> tuple[float | None, int, int, np.ndarray]:
    """PBO of a (sessions x trials) matrix: (pbo, S, combinations, logits). The leading
    sessions that do not fill a block are left out; S shrinks (stays even) so that every
    block has at least 2 sessions."""
    t, n = returns.shape
    s = min(splits, (t // 2) // 2 * 2)
    if n < 2 or s < 2:
        return None, s, 0, np.empty(0)
    size = t // s
    r = returns[t - size * s :].reshape(s, size, n)
    block_sum = r.sum(axis=1)  # (S, N)
    block_sq = (r * r).sum(axis=1)
    total, total_sq = block_sum.sum(axis=0), block_sq.sum(axis=0)
    half = s // 2
    combos = np.array(list(combinations(range(s), half)), dtype=np.int64)
    logits = np.empty(len(combos))
    for lo in range(0, len(combos), _CHUNK):
        chunk = combos[lo : lo + _CHUNK]
        mask = np.zeros((len(chunk), s))
        np.put_along_axis(mask, chunk, 1.0, axis=1)
        is_sum, is_sq = mask @ block_sum, mask @ block_sq
        m = half * size
        sr_is = _sharpe(is_sum, is_sq, m)
        sr_oos = _sharpe(total - is_sum, total_sq - is_sq, m)
        best = np.argmax(sr_is, axis=1)
        v = sr_oos[np.arange(len(chunk)), best][:, None]
        # its rank 1..N out of sample, ties sharing their average rank
        rank = (sr_oos < v).sum(axis=1) + ((sr_oos == v).sum(axis=1) + 1) / 2.0
        omega = rank / (n + 1)
        logits[lo : lo + len(chunk)] = np.log(omega / (1.0 - omega))
    return float(np.mean(logits <= 0.0)), s, len(combos), logits


def expected_max_sharpe(sharpes: np.ndarray) -> float:
    """SR0: the expected largest of N Sharpe ratios of no-skill trials with the trials'
    variance (Bailey and López de Prado 2014, eq. for E[max])."""
    n = sharpes.size
    if n < 2:
        return 0.0
    sd = float(np.std(sharpes, ddof=1))
    z = NormalDist()
    return sd * (
        (1.0 - EULER_GAMMA) * z.inv_cdf(1.0 - 1.0 / n)
        + EULER_GAMMA * z.inv_cdf(1.0 - 1.0 / (n * math.e))
    )


def deflated_sharpe(returns: np.ndarray) -> tuple[float | None, float | None, float | None]:
    """(DSR, best per-session Sharpe, SR0) of a (sessions x trials) matrix."""
    t, n = returns.shape
    if t < 3 or n < 1:
        return None, None, None
    sums, sq = returns.sum(axis=0), (returns * returns).sum(axis=0)
    sharpes = _sharpe(sums, sq, t)
    best = int(np.argmax(sharpes))
    sr = float(sharpes[best])
    sr0 = expected_max_sharpe(sharpes)
    x = returns[:, best]
    sd = float(np.std(x))
    if sd < 1e-12:
        return None, sr, sr0
    centred = (x - x.mean()) / sd
    skew = float(np.mean(centred**3))
    kurt = float(np.mean(centred**4))
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if denom <= 0:
        return None, sr, sr0
    stat = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)
    return NormalDist().cdf(stat), sr, sr0


def overfitting(returns: np.ndarray, splits: int = 16) -> Overfitting:
    """Both statistics for a (sessions x trials) matrix of daily returns."""
    returns = np.asarray(returns, dtype=float)
    if returns.ndim != 2:
        raise ValueError("returns must be (sessions x trials)")
    t, n = returns.shape
    pbo, s, count, logits = pbo_cscv(returns, splits)
    dsr, sr, sr0 = deflated_sharpe(returns)
    return Overfitting(n, t, pbo, s, count, logits, dsr, sr, sr0)
