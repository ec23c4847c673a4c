"""Survival objectives: Cox partial likelihood on risk scores, discrete-time NLL on hazard logits.

Both are ``nn.Module`` losses that return named parts (``{"cox": ...}``, ``{"nll": ...}``), as every
objective in :mod:`polymodal.objectives` does; the system sums the parts.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CoxPartialLikelihood", "DiscreteTimeSurvivalNLL", "discrete_time_risk"]


def _flat(x: torch.Tensor, name: str, n: int | None = None) -> torch.Tensor:
    x = x.reshape(-1) if x.ndim == 2 and x.shape[-1] == 1 else x
    if x.ndim != 1 or (n is not None and x.shape[0] != n):
        raise ValueError(
            f"{name} must have shape (B,)" + (f" with B={n}" if n is not None else "") + f", got {tuple(x.shape)}"
        )
    return x


class CoxPartialLikelihood(nn.Module):
    """Negative Cox partial log-likelihood with Breslow's handling of tied times.

    For every sample i with an event, the risk set is everyone still under observation at its time,
    ``R_i = {j : t_j >= t_i}`` (tied times all count, which is Breslow's approximation)::

        loss = -1/n_events * sum_{i: event_i} [ r_i - log sum_{j in R_i} exp(r_j) ]

    Only the batch forms the risk sets, so a mini-batch loss estimates the full-cohort one; larger
    batches give better estimates (a full batch is exact).

    A batch without events carries no information about ranking; the loss is then ``0 * sum(risk)``,
    a zero that still has a gradient, so Lightning and DDP see every parameter used.
    """

    def forward(self, risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            risk: (B,) log-hazard ratios (higher = earlier event); (B, 1) is accepted.
            time: (B,) observed times (event or censoring).
            event: (B,) 1 for an observed event, 0 for censored (bool or float).

        Returns:
            ``{"cox": scalar}``, averaged over the batch's events.
        """
        risk = _flat(risk, "risk")
        time = _flat(time, "time", risk.shape[0]).to(risk.dtype)
        event = _flat(event, "event", risk.shape[0]).to(risk.dtype)
        n_events = event.sum()
        if n_events.item() == 0:
            return {"cox": (risk * 0.0).sum()}
        order = torch.argsort(time)  # ascending
        t_sorted, r_sorted = time[order], risk[order]  # (B,), (B,)
        # log sum_{k >= m} exp(r_sorted[k]): a reverse cumulative logsumexp.
        tail = torch.logcumsumexp(r_sorted.flip(0), dim=0).flip(0)  # (B,)
        # Breslow: the risk set of t_i starts at the first sorted position with time >= t_i, so
        # tied times share the same (largest) risk set.
        first = torch.searchsorted(t_sorted.contiguous(), time.contiguous(), side="left")  # (B,)
        log_risk_set = tail[first]  # (B,)
        loss = -((risk - log_risk_set) * event).sum() / n_events
        return {"cox": loss}


def discrete_time_risk(logits: torch.Tensor) -> torch.Tensor:
    """Risk score from discrete-time hazard logits: minus the summed survival curve (MCAT's rule).

    Args:
        logits: (B, K) hazard logits, ``h_k = sigmoid(logits_k)``.

    Returns:
        (B,) risk; higher means the survival curve drops earlier.
    """
    survival = torch.cumprod(torch.sigmoid(-logits), dim=-1)  # (B, K): S_k = prod_{j<=k} (1 - h_j)
    return -survival.sum(dim=-1)


class DiscreteTimeSurvivalNLL(nn.Module):
    """Negative log-likelihood of discrete-time survival with censoring (MCAT / PORPOISE's NLLSurvLoss).

    Time is cut into K bins; the model predicts a hazard per bin, ``h_k = P(T in bin k | T >= bin k)``
    and ``S_k = prod_{j<=k} (1 - h_j)``. A sample in bin y contributes

    * with an event: ``-log S_{y-1} - log h_y`` (survived the earlier bins, then the event);
    * censored: ``-log S_y`` (survived at least through its bin; MCAT's convention).

    ``loss = (1 - alpha) * mean(all terms) + alpha * mean(event terms, zero for censored)``; ``alpha``
    up-weights uncensored samples as in MCAT (``--alpha_surv``, default 0.0 there).

    Unlike MCAT, which clamps probabilities at 1e-7, log-probabilities come from ``logsigmoid``, so
    the loss is exact and finite for any logits.

    Args:
        alpha: weight of the extra uncensored term, in [0, 1].
    """

    def __init__(self, alpha: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(self, logits: torch.Tensor, bin: torch.Tensor, event: torch.Tensor) -> dict[str, torch.Tensor]:
        """Compute the loss.

        Args:
            logits: (B, K) hazard logits.
            bin: (B,) int time-bin index in [0, K).
            event: (B,) 1 for an observed event, 0 for censored.

        Returns:
            ``{"nll": scalar}``, averaged over the batch.
        """
        if logits.ndim != 2:
            raise ValueError(f"logits must have shape (B, K), got {tuple(logits.shape)}")
        b, k = logits.shape
        bin = _flat(bin, "bin", b).long()
        event = _flat(event, "event", b).to(logits.dtype)
        if bin.numel() and (bin.min() < 0 or bin.max() >= k):
            raise ValueError(f"bin indices must lie in [0, {k}), got [{int(bin.min())}, {int(bin.max())}]")
        log_h = F.logsigmoid(logits)  # (B, K) log h_k
        log_1mh = F.logsigmoid(-logits)  # (B, K) log (1 - h_k)
        log_s = torch.cumsum(log_1mh, dim=-1)  # (B, K) log S_k
        log_s_pad = F.pad(log_s, (1, 0))  # (B, K+1): log S_{k-1}, with S_{-1} = 1
        idx = bin.unsqueeze(-1)  # (B, 1)
        log_s_before = log_s_pad.gather(1, idx).squeeze(1)  # (B,) log S_{y-1}
        log_h_y = log_h.gather(1, idx).squeeze(1)  # (B,) log h_y
        log_s_y = log_s.gather(1, idx).squeeze(1)  # (B,) log S_y
        uncensored = -event * (log_s_before + log_h_y)  # (B,)
        censored = -(1.0 - event) * log_s_y  # (B,)
        loss = (1.0 - self.alpha) * (uncensored + censored) + self.alpha * uncensored
        return {"nll": loss.mean()}
