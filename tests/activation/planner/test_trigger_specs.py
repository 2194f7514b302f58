"""Trigger YAML: the shipped files load; bad files fail with file + field + what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from activation.trigger_specs import (
    TRIGGERS_DIR,
    TriggerSpecError,
    load_trigger_file,
    load_triggers,
)

from .conftest import trigger


def test_shipped_triggers_load_and_cover_every_kind() -> None:
    specs = load_triggers()
    kinds = {s.kind for s in specs}
    assert kinds == {
        "birthday",
        "appointment_reminder",
        "winback",
        "segment_offer",
        "partner_offer",
        "cashback_threshold",
        "cashback_expiry",
    }
    assert len({s.name for s in specs}) == len(list(TRIGGERS_DIR.glob("*.yaml")))
    winback = next(s for s in specs if s.kind == "winback")
    assert winback.requires_score


def _write(tmp_path: Path, name: str, data: dict) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def _valid() -> dict:
    return yaml.safe_load((TRIGGERS_DIR / "birthday_greeting.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"template": {"name": "t", "text": "Hi {firstname}"}},
            "birthday_greeting.yaml: (top level): template.text: unknown variable {firstname}",
        ),
        (
            {"template": {"name": "t", "text": "Hi {first_name!r}"}},
            "format specs and conversions are not supported",
        ),
        ({"holdout_pct": 150}, "birthday_greeting.yaml: holdout_pct: Input should be less"),
        (
            {"channels": ["whatsapp", "pigeon"]},
            "birthday_greeting.yaml: channels.1: Input should be",
        ),
        ({"frequency_cap": {"max_messages": 0, "per_days": 7}}, "frequency_cap.max_messages"),
        ({"quiet_hours": {"start": "25:00", "end": "09:00"}}, "quiet_hours.start"),
        ({"params": {"days_before": -1}}, "birthday_greeting.yaml: params.days_before"),
        ({"prority": 5}, "birthday_greeting.yaml: prority: unknown field"),
        ({"kind": "horoscope"}, "birthday_greeting.yaml: kind: unknown kind 'horoscope'"),
        ({"name": "other_name"}, "name: 'other_name' differs from the file name"),
        (
            {"audience": {"where": "gender = 'f'"}},
            "audience: `where` needs `model`",
        ),
    ],
)
def test_invalid_files_name_file_field_and_problem(
    tmp_path: Path, change: dict, expected: str
) -> None:
    data = _valid() | change
    path = _write(tmp_path, "birthday_greeting", data)
    with pytest.raises(TriggerSpecError) as err:
        load_trigger_file(path)
    assert expected in str(err.value)


def test_missing_required_field_and_all_files_reported_together(tmp_path: Path) -> None:
    bad1 = _valid()
    del bad1["frequency_cap"]
    _write(tmp_path, "birthday_greeting", bad1)
    bad2 = _valid() | {"name": "second", "template": {"name": "x", "text": "{balance}"}}
    _write(tmp_path, "second", bad2)
    (tmp_path / "broken.yaml").write_text("name: [unclosed", encoding="utf-8")
    with pytest.raises(TriggerSpecError) as err:
        load_triggers(tmp_path)
    problems = err.value.problems
    assert any(
        p.startswith("birthday_greeting.yaml: frequency_cap: Field required") for p in problems
    )
    assert any(p.startswith("second.yaml:") and "{balance}" in p for p in problems)
    assert any(p.startswith("broken.yaml: (YAML)") for p in problems)


def test_template_render_uses_defaults_and_literal_braces() -> None:
    spec = trigger(
        template={
            "name": "t",
            "text": "{{x}} {first_name}: {birthday_date}",
            "defaults": {"first_name": "Hello"},
        }
    )
    assert spec.template.render({"first_name": "", "birthday_date": "30.03"}) == "{x} Hello: 30.03"
    with pytest.raises(KeyError, match="birthday_date"):
        spec.template.render({"first_name": "A"})
