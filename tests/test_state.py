"""The SQLite state: a paid job's journal entry is closed together with its ledger row."""

from __future__ import annotations

from pathlib import Path

import pytest

from aivpbuild.state import StateDB


def intent(db: StateDB) -> int:
    return db.journal_intent(key="k1", target="clip:a", provider="fal", endpoint="fal-ai/x",
                             input_digest="d", estimate_usd=0.5)


def spend(db: StateDB) -> None:
    db.record_spend(target="clip:a", key="k1", provider="fal", model="fal-ai/x", request_id="r1",
                    estimate_usd=0.5, actual_usd=0.5, outcome="succeeded", billed=True)


def test_records_in_one_transaction_commit_together_or_not_at_all(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    job = intent(db)
    with pytest.raises(RuntimeError), db.transaction():
        db.journal_state(job, "fetched")
        spend(db)
        raise RuntimeError("killed between the two")
    assert [j.state for j in db.open_jobs("k1")] == ["intent"] and db.spend_rows() == []

    with db.transaction():
        db.journal_state(job, "fetched")
        spend(db)
    db.close()
    again = StateDB(tmp_path / "state.db")  # committed: another connection sees both
    assert again.open_jobs("k1") == [] and len(again.spend_rows()) == 1
