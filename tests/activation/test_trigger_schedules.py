"""The `schedule` block of trigger specs: validated per file and across files, grouped
into planning jobs (which orchestration turns into Dagster jobs and schedules)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from activation.trigger_specs import (
    TRIGGERS_DIR,
    TriggerSpecError,
    check_cron,
    load_trigger_file,
    load_triggers,
    planning_jobs,
)


def _spec(name: str, **change: object) -> dict:
    data = yaml.safe_load((TRIGGERS_DIR / "birthday_greeting.yaml").read_text(encoding="utf-8"))
    return data | {"name": name} | change


def _write(directory: Path, data: dict) -> Path:
    path = directory / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_shipped_triggers_form_todays_planning_jobs() -> None:
    jobs = {j.name: j for j in planning_jobs(load_triggers())}
    assert {name: (j.schedule_name, j.cron, j.triggers) for name, j in jobs.items()} == {
        "plan_birthdays": ("birthdays_daily", "15 0 * * *", ("birthday_greeting",)),
        "plan_reminders": ("reminders_every_15_min", "*/15 * * * *",
                           ("appointment_reminder_24h", "appointment_reminder_2h")),
        "plan_weekly": ("offers_weekly", "0 3 * * 1",
                        ("partner_offer", "segment_offer", "winback_offer")),
        "plan_cashback": ("cashback_daily", "30 4 * * *",
                          ("cashback_expiry", "cashback_threshold")),
    }  # fmt: skip
    assert all(j.timezone == "UTC" for j in jobs.values())
    birthdays = jobs["plan_birthdays"].description
    assert "- birthday_greeting: Greeting with a birthday gift" in birthdays


def test_a_new_trigger_file_joins_or_starts_a_job(tmp_path: Path) -> None:
    _write(tmp_path, _spec("a", schedule={"job": "plan_x", "cron": "0 6 * * *"}))
    _write(tmp_path, _spec("b", schedule={"job": "plan_x", "cron": "0  6 * * *", "name": "x"}))
    _write(tmp_path, _spec("c", schedule={"job": "plan_y", "cron": "0 7 * * mon-fri",
                                          "timezone": "Europe/Berlin"}))  # fmt: skip
    _write(tmp_path, _spec("d", schedule=None))  # planned on demand only
    jobs = {j.name: j for j in planning_jobs(load_triggers(tmp_path))}
    assert jobs["plan_x"].triggers == ("a", "b") and jobs["plan_x"].schedule_name == "x"
    assert jobs["plan_x"].cron == "0 6 * * *"  # normalised
    assert (jobs["plan_y"].schedule_name, jobs["plan_y"].timezone) == (
        "plan_y_schedule",
        "Europe/Berlin",
    )
    assert set(jobs) == {"plan_x", "plan_y"}


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"job": "plan_x", "cron": "0 6 * *"}, "schedule.cron: '0 6 * *': expected 5 fields"),
        ({"job": "plan_x", "cron": "0 25 * * *"}, "schedule.cron: hour: 25 is outside 0–23"),
        ({"job": "plan_x", "cron": "*/0 * * * *"}, "schedule.cron: minute: step 0"),
        ({"job": "plan_x", "cron": "0 6 * * fri-mon"},
         "schedule.cron: day of week: range 'fri-mon' runs backwards"),
        ({"job": "plan_x", "cron": "0 6 * * x"}, "schedule.cron: day of week: 'x' is not a"),
        ({"job": "Plan X", "cron": "0 6 * * *"}, "schedule.job: String should match pattern"),
        ({"job": "plan_x", "cron": "0 6 * * *", "timezone": "Mars/Olympus"},
         "schedule.timezone: unknown IANA time zone 'Mars/Olympus'"),
        ({"job": "plan_x", "cron": "0 6 * * *", "every": "day"}, "schedule.every: unknown field"),
        ({"cron": "0 6 * * *"}, "schedule.job: Field required"),
    ],
)  # fmt: skip
def test_invalid_schedules_name_file_field_and_problem(
    tmp_path: Path, schedule: dict, expected: str
) -> None:
    path = _write(tmp_path, _spec("a", schedule=schedule))
    with pytest.raises(TriggerSpecError) as err:
        load_trigger_file(path)
    assert f"a.yaml: {expected}" in str(err.value)


def test_triggers_of_one_job_must_agree(tmp_path: Path) -> None:
    _write(tmp_path, _spec("a", schedule={"job": "plan_x", "cron": "0 6 * * *", "name": "x"}))
    _write(tmp_path, _spec("b", schedule={"job": "plan_x", "cron": "0 7 * * *", "name": "y"}))
    _write(tmp_path, _spec("c", schedule={"job": "plan_z", "cron": "0 8 * * *", "name": "x"}))
    with pytest.raises(TriggerSpecError) as err:
        load_triggers(tmp_path)
    problems = err.value.problems
    assert any(p.startswith("a.yaml: schedule.cron: triggers of job 'plan_x' disagree") and
               "b: '0 7 * * *'" in p for p in problems)  # fmt: skip
    assert any("schedule.name: triggers of job 'plan_x' name different schedules" in p
               for p in problems)  # fmt: skip
    assert any("schedule.name: 'x' is already the schedule of job 'plan_x'" in p
               for p in problems)  # fmt: skip


def test_check_cron_accepts_the_usual_forms() -> None:
    for cron in ("*/15 * * * *", "5 0-6/2 1,15 jan-mar 1-5", "0 0 1 * 0", "0 12 * * 7"):
        assert check_cron(cron) == cron
    assert check_cron(" 30   4 * * * ") == "30 4 * * *"
