"""Feature SQL: exact values on hand-made rows, point-in-time correctness, labels."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import warehouse
from ml.contract import create_input_tables
from ml.features import BGNBD_COLUMNS, FEATURES, SLOT_COLUMNS, add_rfm_scores, build_features
from simulation.visit_world import generate_world
from warehouse import contracts

C = pd.Timestamp("2024-06-01", tz="UTC")


def ts(value: str | pd.Timestamp) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp


def _visit(business: str, customer: str, key: str, when: str, amount: float) -> dict:
    return {
        "appointment_key": f"{business}:{key}", "business_id": business, "appointment_id": key,
        "customer_id": customer, "location_id": "l1", "service_id": "s1",
        "visited_at": ts(when), "amount": amount, "currency": "EUR", "offer_id": None,
        "updated_at": ts(when),
    }  # fmt: skip


def _appt(business, customer, key, status, scheduled, created, updated, amount=None) -> dict:
    return {
        "appointment_key": f"{business}:{key}", "business_id": business, "appointment_id": key,
        "customer_id": customer, "location_id": "l1", "service_id": "s1", "status": status,
        "scheduled_at": ts(scheduled), "amount": amount, "currency": "EUR", "offer_id": None,
        "created_at": ts(created), "updated_at": ts(updated),
    }  # fmt: skip


def _msg(mid, sent=None, read=None, replied=None, opted=None, holdout=False) -> dict:
    def opt(v):
        return ts(v) if v else pd.NaT

    return {
        "message_id": mid, "business_id": "b1", "customer_id": "c1", "trigger": "winback",
        "channel": "whatsapp", "holdout": holdout, "planned_at": ts(sent or "2024-05-05"),
        "sent_at": opt(sent), "delivered_at": opt(sent), "read_at": opt(read),
        "replied_at": opt(replied), "failed_at": pd.NaT, "opted_out_at": opt(opted),
    }  # fmt: skip


def _ledger(eid, event_type, amount, when) -> dict:
    return {
        "entry_id": eid, "partner_id": "p1", "event_type": event_type, "customer_id": "c1",
        "phone_e164": "+10000000001", "amount": amount, "currency": "EUR",
        "occurred_at": ts(when), "offer_id": None,
    }  # fmt: skip


def _customer(business, customer, birthday, kind) -> dict:
    return {
        "business_id": business, "customer_id": customer, "phone_e164": "", "full_name": "",
        "birthday": birthday and pd.Timestamp(birthday).date(), "timezone": "UTC",
        "consent_marketing": True, "first_visit_at": None, "last_visit_at": None, "visits": 0,
        "revenue": 0.0, "business_kind": kind,
    }  # fmt: skip


def _insert(client, table: str, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows)
    for column in frame.columns:
        if column.endswith("_at") and frame[column].dtype == object:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    client.insert_df(table, frame)


def load_hand_rows(client) -> None:
    create_input_tables(client)
    visits = [
        _visit("b1", "c1", "v1", "2024-03-02 10:00", 10.0),
        _visit("b1", "c1", "v2", "2024-04-01 10:00", 20.0),
        _visit("b1", "c1", "v3", "2024-05-02 10:00", 30.0),
        _visit("b1", "c1", "v4", "2024-06-05 10:00", 40.0),  # after the cutoff: label only
        _visit("b1", "c2", "v5", "2023-06-01 00:00", 100.0),
        _visit("b1", "c3", "v6", "2024-06-15 10:00", 10.0),  # first visit after the cutoff
        _visit("b1", "c4", "v7", "2024-05-31 23:00", 15.0),
        _visit("b1", "c4", "v8", "2024-06-01 00:00", 15.0),  # exactly at the cutoff
        _visit("b2", "c1", "v9", "2024-01-10 12:00", 50.0),
    ]
    _insert(client, "marts.fct_visits", visits)
    appts = [
        _appt("b1", "c1", v["appointment_id"], "completed", v["visited_at"],
              v["visited_at"] - pd.Timedelta(days=2), v["visited_at"], v["amount"])
        for v in visits[:4]
    ] + [
        _appt("b1", "c1", "u1", "scheduled", "2024-06-10", "2024-05-25", "2024-05-25"),
        _appt("b1", "c1", "u2", "cancelled", "2024-06-03", "2024-05-20", "2024-05-28"),
        # cancelled only after the cutoff: still a booking as of the cutoff
        _appt("b1", "c1", "u3", "cancelled", "2024-06-02 12:00", "2024-05-20", "2024-06-01 12:00"),
        _appt("b1", "c1", "n1", "no_show", "2024-04-15 10:00", "2024-04-14", "2024-04-15 12:00"),
        _appt("b1", "c1", "late", "scheduled", "2024-06-20", "2024-06-02", "2024-06-02"),
    ]  # fmt: skip
    _insert(client, "marts.fct_appointments", appts)
    _insert(
        client,
        "marts.fct_message_sends",
        [
            _msg("m1", sent="2024-05-01", read="2024-05-01 01:00", replied="2024-05-02"),
            _msg("m2", sent="2024-05-10", read="2024-06-02", opted="2024-06-05"),
            _msg("m3", holdout=True),
            _msg("m4", sent="2024-06-03", read="2024-06-03"),
        ],
    )
    _insert(
        client,
        "marts.cashback_ledger",
        [
            _ledger("e1", "accrual", 5.0, "2024-05-01"),
            _ledger("e2", "redemption", -3.0, "2024-05-15"),
            _ledger("e3", "accrual", 7.0, "2024-06-02"),
        ],
    )
    _insert(
        client,
        "marts.dim_customers",
        [
            _customer("b1", "c1", "1990-06-11", "salon"),
            _customer("b1", "c2", "1985-05-31", "salon"),
            _customer("b1", "c4", None, "salon"),
            _customer("b2", "c1", "1990-06-11", "clinic"),
        ],
    )


@pytest.fixture
def hand_features(tmp_path: Path) -> dict[int, pd.DataFrame]:
    with warehouse.connect(f"chdb://{tmp_path / 'wh'}") as client:
        load_hand_rows(client)
        return {h: build_features(client, [C], h) for h in (30, 3)}


def test_features_exact_values_on_hand_made_rows(hand_features):
    frame = hand_features[30].set_index(["business_id", "customer_id"])
    assert sorted(frame.index) == [("b1", "c1"), ("b1", "c2"), ("b1", "c4"), ("b2", "c1")]
    c1 = frame.loc[("b1", "c1")]
    expected = {
        "days_since_last_visit": 30 - 10 / 24,
        "tenure_days": 91 - 10 / 24,
        "visits_all": 3, "visits_30": 1, "visits_90": 2, "visits_365": 3,
        "spend_all": 60.0, "spend_90": 50.0, "avg_ticket": 20.0,
        "gap_mean": 30.5, "gap_std": 0.5, "last_gap": 31,
        "recency_gap_ratio": (30 - 10 / 24) / 30.5,
        "upcoming_booking": 1, "days_to_upcoming": 1.5,
        "cancellations_365": 1, "no_shows_365": 1, "advance_booking_share": 1.0,
        "messages_180": 2, "read_rate_180": 0.5, "reply_rate_180": 0.5, "opted_out": 0,
        "days_since_last_message": 22.0,
        "cashback_accruals_365": 1, "cashback_accrued_365": 5.0,
        "cashback_redemptions_365": 1, "cashback_balance": 2.0,
        "days_since_partner_event": 17.0,
        "days_to_birthday": 10, "birthday_within_30": 1,
        "bg_x": 2, "bg_t_x": 61, "bg_T": 91,
        # Appointments of any outcome before the cutoff: v1, v2, v3 and the no-show n1;
        # u1 and u3 (cancelled only after the cutoff) are still open bookings at it.
        "upcoming_bookings": 2, "appointments_all": 4, "appointments_365": 4,
        "days_since_last_appointment": 30 - 10 / 24, "days_since_last_booking": 7.0,
        "booked_since_last_visit": 1, "completed_share": 0.75,
        "visits_per_30d": 90 / (91 - 10 / 24), "appointments_per_30d": 120 / (91 - 10 / 24),
        "overdue_appointments": 4 / (91 - 10 / 24) * (30 - 10 / 24),
        "bg_slot_x": 3, "bg_slot_t_x": 61, "bg_slot_T": 91,
    }  # fmt: skip
    for name, value in expected.items():
        assert c1[name] == pytest.approx(value), name
    assert c1["business_kind"] == "salon"
    assert c1["revisited"] == 1

    c2 = frame.loc[("b1", "c2")]
    assert c2["visits_365"] == 0 and c2["days_since_last_visit"] == pytest.approx(366)
    assert math.isnan(c2["gap_mean"]) and math.isnan(c2["recency_gap_ratio"])
    assert c2["days_to_birthday"] == 364 and c2["revisited"] == 0
    assert c2["messages_180"] == 0 and math.isnan(c2["read_rate_180"])

    c4 = frame.loc[("b1", "c4")]
    assert c4["visits_all"] == 1 and c4["revisited"] == 1  # the visit at the cutoff is future
    assert math.isnan(c4["days_to_birthday"])

    # RFM terciles per business, 3 = best; the same person at b2 is ranked within b2 only.
    assert frame["rfm_cell"].to_dict() == {
        ("b1", "c1"): "233", ("b1", "c2"): "111", ("b1", "c4"): "322", ("b2", "c1"): "111"
    }  # fmt: skip
    # The cashback ledger is per person, across businesses.
    assert frame.loc[("b2", "c1"), "cashback_balance"] == 2.0
    assert frame.loc[("b2", "c1"), "business_kind"] == "clinic"
    assert frame.loc[("b2", "c1"), "upcoming_booking"] == 0
    # No appointments at all: appointment features are undefined, not zero-day silences.
    b2 = frame.loc[("b2", "c1")]
    assert b2["appointments_all"] == 0 and b2["booked_since_last_visit"] == 0
    for name in ("days_since_last_appointment", "days_since_last_booking", "bg_slot_x",
                 "bgnbd_appointments_p_alive", "bgnbd_appointments_expected_30d"):  # fmt: skip
        assert math.isnan(b2[name]), name
    # BG/NBD features: probabilities and expectations wherever their inputs exist.
    assert frame["bgnbd_p_alive"].between(0, 1).all()
    assert (frame["bgnbd_expected_30d"] >= 0).all()
    assert 0 <= c1["bgnbd_appointments_p_alive"] <= 1


def test_rfm_terciles_share_ties_and_rank_within_business_and_cutoff():
    frame = pd.DataFrame(
        {
            "cutoff": ["c1"] * 6 + ["c2"] * 2,
            "business_id": ["a"] * 6 + ["a"] * 2,
            "customer_id": [f"p{i}" for i in range(8)],
            "days_since_last_visit": [1.0, 1.0, 5.0, 9.0, 9.0, 9.0, 3.0, 4.0],
            "visits_365": [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 1.0, 1.0],
            "spend_365": [0.0, 0.0, 0.0, 0.0, 10.0, 20.0, 5.0, 7.0],
        }
    )
    add_rfm_scores(frame)
    # Recency: the most recent is best; the three tied at 9 days all take rank 1 → R1.
    assert frame["r_score"].tolist() == [3, 3, 2, 1, 1, 1, 2, 1]
    assert frame["f_score"].tolist() == [3, 3, 2, 2, 1, 1, 1, 1]  # ties at c2 share F1
    assert frame["m_score"].tolist() == [1, 1, 1, 1, 3, 3, 1, 2]  # four tied at 0 → M1
    assert frame["rfm_cell"].tolist() == ["331", "331", "221", "121", "113", "113", "211", "112"]


def test_label_follows_the_horizon(hand_features):
    short = hand_features[3].set_index(["business_id", "customer_id"])["revisited"]
    assert short.to_dict() == {("b1", "c1"): 0, ("b1", "c2"): 0, ("b1", "c4"): 1, ("b2", "c1"): 0}
    long_features = hand_features[30][FEATURES].reset_index(drop=True)
    pd.testing.assert_frame_equal(long_features, hand_features[3][FEATURES].reset_index(drop=True))


def _after_cutoff_copy(frame: pd.DataFrame, prefix: str, rng: np.random.Generator) -> pd.DataFrame:
    """The same rows with fresh ids and every timestamp moved into [C, C + 60 days)."""
    out = frame.copy()
    for column in out.columns:
        if column.endswith("_at"):
            shift = pd.to_timedelta(rng.uniform(0, 60, len(out)), unit="D")
            moved = C + shift
            out[column] = moved.where(out[column].notna(), pd.NaT)
        elif column in ("appointment_key", "appointment_id", "message_id", "entry_id"):
            out[column] = prefix + out[column].astype(str)
    if "created_at" in out.columns:  # created before it is scheduled, both after C
        out["created_at"] = C
    return out


def _history_of(appts: pd.DataFrame) -> pd.DataFrame:
    """fct_appointments rows as the versions marts.fct_appointment_history records."""
    cols = ["appointment_key", "business_id", "appointment_id", "customer_id", "status",
            "scheduled_at", "created_at"]  # fmt: skip
    return appts[cols].assign(valid_from=appts["updated_at"], valid_to=pd.NaT, is_deleted=False)


def test_adding_data_after_the_cutoff_changes_no_feature(tmp_path: Path):
    world = generate_world(n_customers=1_500, start="2023-06-01", days=500, seed=11)
    rng = np.random.default_rng(0)
    dsn = f"chdb://{tmp_path / 'wh'}"
    cols = ["business_id", "customer_id", *FEATURES, *BGNBD_COLUMNS, *SLOT_COLUMNS]
    with warehouse.connect(dsn) as client:
        # In production only the latest version of an appointment is kept (staging reads the
        # CRM table with FINAL): a ReplacingMergeTree fixture of the contracted columns,
        # merged below, does the same.
        client.command("CREATE DATABASE IF NOT EXISTS marts")
        client.command(
            contracts.table("marts.fct_appointments").create_table_sql(
                engine="ReplacingMergeTree(updated_at)", order_by="(business_id, appointment_key)"
            )
        )
        world.load(client)
        # What dbt's incremental histories hold after the loads before the cutoff: each
        # appointment's and customer's version of then (marts.fct_appointment_history,
        # marts.customer_consent_history).
        appts = world.tables["marts.fct_appointments"]
        client.insert_df("marts.fct_appointment_history", _history_of(appts))
        people = world.tables["marts.dim_customers"]
        consent = people[["business_id", "customer_id", "consent_marketing"]].assign(
            source_customer_id=people["customer_id"],
            valid_from=C - pd.Timedelta(days=400),
            valid_to=pd.NaT,
            is_deleted=False,
        )
        client.insert_df("marts.customer_consent_history", consent)
        before = build_features(client, [C], 30)[cols]
        assert before["consent_marketing"].notna().all()
        # 1. every kind of row again, all of it happening after the cutoff (new customers too)
        for table, frame in world.tables.items():
            if table == "marts.dim_customers":
                continue
            moved = _after_cutoff_copy(frame, "late-", rng)
            if table == "marts.fct_visits":
                moved["customer_id"] = moved["customer_id"].where(
                    rng.random(len(moved)) < 0.5, "new-" + moved["customer_id"]
                )
            client.insert_df(table, moved)
        # 2. bookings open at the cutoff (made before it, for after it) that are completed,
        # cancelled or missed after it. (Bookings already cancelled before the cutoff stay
        # cancelled: once only the latest version is kept, a later change of a cancelled
        # booking is indistinguishable from an earlier one — see ml.features.)
        appts = world.tables["marts.fct_appointments"]
        open_at_c = (appts["updated_at"] >= C) | (appts["status"] != "cancelled")
        pending = appts[(appts["created_at"] < C) & (appts["scheduled_at"] >= C) & open_at_c]
        pending = pending.copy()
        assert len(pending) > 20
        pending["status"] = rng.choice(["completed", "cancelled", "no_show"], len(pending))
        pending["updated_at"] = pending["scheduled_at"] + pd.Timedelta(hours=2)
        # 4. half of them are first rescheduled after the cutoff (earlier or later, some
        # to before the cutoff itself) and stay booked: the CRM's current state shows only
        # the new time, the history also the old one.
        moved = pending.iloc[::2].copy()
        pending = pending.iloc[1::2]
        moved["status"] = "scheduled"
        moved["updated_at"] = moved["updated_at"].clip(lower=C) + pd.Timedelta(hours=1)
        shift = rng.integers(-3, 10, len(moved)) * pd.Timedelta(days=1)
        moved["scheduled_at"] = moved["scheduled_at"] + shift
        for frame in (pending, moved):
            client.insert_df("marts.fct_appointments", frame)
            client.insert_df("marts.fct_appointment_history", _history_of(frame))
        # 5. every customer's marketing consent flips after the cutoff
        client.command(
            "ALTER TABLE marts.dim_customers UPDATE consent_marketing = NOT consent_marketing "
            "WHERE 1",
            settings={"mutations_sync": 2},
        )
        client.insert_df(
            "marts.customer_consent_history",
            consent.assign(
                consent_marketing=~consent["consent_marketing"],
                valid_from=C + pd.Timedelta(days=2),
            ),
        )
        # 3. reads, replies and opt-outs of old messages happening after the cutoff
        client.command(
            "ALTER TABLE marts.fct_message_sends UPDATE "
            "read_at = ifNull(read_at, {c:DateTime64(3, 'UTC')} + INTERVAL 1 DAY), "
            "replied_at = ifNull(replied_at, {c:DateTime64(3, 'UTC')} + INTERVAL 2 DAY), "
            "opted_out_at = ifNull(opted_out_at, {c:DateTime64(3, 'UTC')} + INTERVAL 3 DAY) "
            "WHERE sent_at IS NOT NULL",
            parameters={"c": C.to_pydatetime()},
            settings={"mutations_sync": 2},
        )
        # Merged tables keep only the latest versions: the hardest case for as-of logic.
        for table in ("marts.fct_visits", "marts.fct_appointments"):
            client.command(f"OPTIMIZE TABLE {table} FINAL")
        after = build_features(client, [C], 30)[cols]
        later = build_features(client, [C + pd.Timedelta(days=45)], 30)
    assert len(before) > 1_000
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))
    # The additions are real: a later cutoff sees them.
    assert later["customer_id"].str.startswith("new-").any()
    assert len(later) > len(before)
