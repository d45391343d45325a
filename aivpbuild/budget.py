"""The budget guard: refuse, before anything is submitted, a build that would cost too much."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aivpbuild.errors import BudgetError

DEFAULT_CONFIRM_USD = 5.0


def estimate_total(statuses: Sequence[Any]) -> tuple[float, list[Any]]:
    """Total estimated spend of the targets that need work, and those with no known price."""
    work = [s for s in statuses if s.needs_work]
    unknown = [s for s in work if s.estimate_usd is None]
    return sum(s.estimate_usd or 0.0 for s in work), unknown


def most_expensive(statuses: Sequence[Any], n: int = 5) -> str:
    work = sorted((s for s in statuses if s.needs_work and s.estimate_usd),
                  key=lambda s: -float(s.estimate_usd))
    return "; ".join(f"{s.target} ${s.estimate_usd:.2f}" for s in work[:n])


def check_budget(statuses: Sequence[Any], max_usd: float | None) -> float:
    """Raise BudgetError when the estimate exceeds ``max_usd``; returns the estimate."""
    total, unknown = estimate_total(statuses)
    if max_usd is None:
        return total
    if unknown:
        names = ", ".join(s.target for s in unknown[:5])
        raise BudgetError(
            f"cannot check the budget of ${max_usd:.2f}: no price is known for {names}",
            hint="add a price for that model under `models:` in the manifest (price_per_second)",
        )
    if total > max_usd + 1e-9:
        raise BudgetError(
            f"estimated cost ${total:.2f} is over the budget of ${max_usd:.2f}; nothing was "
            f"submitted. Most expensive: {most_expensive(statuses)}",
            hint="build fewer targets, use a cheaper profile, or raise --max-cost / budget.max_usd",
        )
    return total
