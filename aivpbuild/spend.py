"""`aivpbuild cost`: what the spend ledger says was spent, per clip and model, and saved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def spend_report(rows: Sequence[Any]) -> dict[str, Any]:
    """Totals from ledger rows: billed spend (actual cost, else the estimate) and cache savings."""
    per_clip: dict[str, float] = {}
    per_model: dict[str, float] = {}
    total = saved = 0.0
    jobs = failed_billed = 0
    for row in rows:
        if row["outcome"] == "cache_hit":
            saved += row["estimate_usd"] or 0.0
            continue
        if not row["billed"]:
            continue
        cost = row["actual_usd"] if row["actual_usd"] is not None else (row["estimate_usd"] or 0.0)
        clip = row["target"].split(":", 1)[-1]
        per_clip[clip] = per_clip.get(clip, 0.0) + cost
        per_model[row["model"]] = per_model.get(row["model"], 0.0) + cost
        total += cost
        jobs += 1
        failed_billed += row["outcome"] != "succeeded"
    return {"total_usd": round(total, 4), "saved_by_cache_usd": round(saved, 4), "paid_jobs": jobs,
            "failed_but_billed": failed_billed,
            "per_clip": {k: round(v, 4) for k, v in sorted(per_clip.items())},
            "per_model": {k: round(v, 4) for k, v in sorted(per_model.items())}}


def format_spend(report: dict[str, Any]) -> str:
    lines = []
    for title, key in (("per clip", "per_clip"), ("per model", "per_model")):
        if report[key]:
            lines.append(f"{title}:")
            width = max(len(k) for k in report[key])
            lines += [f"  {k:<{width}}  ${v:.2f}" for k, v in report[key].items()]
    lines.append(f"total spent: ${report['total_usd']:.2f} over {report['paid_jobs']} paid job(s)"
                 + (f", {report['failed_but_billed']} failed but billed" if report["failed_but_billed"] else ""))
    lines.append(f"saved by the cache: ${report['saved_by_cache_usd']:.2f}")
    return "\n".join(lines)
