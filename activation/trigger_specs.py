"""Trigger specs: one YAML file per trigger under `activation/triggers/`, validated on load.

A trigger says *who* qualifies (its `kind` builds the occasions, `audience` narrows the
customers), *what* they get (a `str.format`-style template over a fixed set of variables
per kind), *how* (channel preference, by what the customer can receive) and the guard
rails (holdout %, frequency cap, quiet hours in the business's local time, validity
window, priority against other triggers, and whether marketing consent is required).

Contract of a file `<name>.yaml` (field reference: `TriggerSpec` and the `*Params`
classes below):

    name: birthday_greeting          # must equal the file name
    kind: birthday                   # birthday | appointment_reminder | winback |
                                     # segment_offer | partner_offer |
                                     # cashback_threshold | cashback_expiry
    params: {days_before: 3}         # kind-specific, see the *Params classes
    audience: {model: marts.dim_customers, where: "gender = 'f'"}   # or {sql: "select …"}
    channels: [whatsapp, telegram, sms]
    template: {name: birthday_v1, text: "{first_name}, …", defaults: {first_name: …}}
    holdout_pct: 10
    frequency_cap: {max_messages: 2, per_days: 7}
    quiet_hours: {start: "21:00", end: "09:00"}
    send_at_local: "10:00"           # optional preferred local time of day
    validity: {valid_from: 2026-01-01, valid_to: null}
    priority: 50
    uplift_targeting:                # optional: send only where the message pays
      message_cost: 0.05             # uplift × value_per_revisit must exceed it
      value_per_revisit: 30          # default: the customer's average visit amount
    schedule:                        # optional: when it is planned live, and with what
      job: plan_birthdays            # planning job (triggers of one job plan together)
      cron: "15 0 * * *"             # five-field cron, in `timezone` (default UTC)
      name: birthdays_daily          # schedule name; default `<job>_schedule`

Templates are `str.format` strings with plain `{variable}` fields only (no format specs,
conversions, indexing); `{{`/`}}` are literal braces. The planner renders them in SQL,
so every variable is a string; an empty value falls back to `template.defaults`.

Planning jobs: `planning_jobs(specs)` groups the scheduled triggers by `schedule.job`.
Triggers of one job are planned together, so priorities and frequency caps are resolved
across them; they must agree on the cron, the time zone and (where given) the schedule
name. Orchestration builds one job and one schedule per group, so a new trigger file
needs no code change: it joins a job by naming it, or starts a new one.

Errors: `load_triggers` checks every file, and the jobs across files, and raises one
`TriggerSpecError` listing each problem as `<file>: <field>: <what is wrong>`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from activation.contracts import Channel

TRIGGERS_DIR = Path(__file__).resolve().parent / "triggers"

SEGMENTS = (
    "champions",
    "loyal",
    "potential_loyalists",
    "promising",
    "new",
    "need_attention",
    "about_to_sleep",
    "at_risk",
    "cant_lose_them",
    "hibernating",
    "lost",
)

# Variables every template can use (from marts.dim_customers).
COMMON_VARIABLES = frozenset({"first_name", "full_name", "business_kind"})

# Variables each kind provides (see activation/candidates.py for how they are computed).
KIND_VARIABLES: dict[str, frozenset[str]] = {
    "birthday": frozenset({"birthday_date", "days_before"}),
    "appointment_reminder": frozenset({"appointment_date", "appointment_time"}),
    "winback": frozenset({"segment", "days_since_visit"}),
    "segment_offer": frozenset({"segment", "offer"}),
    "partner_offer": frozenset(
        {"offer_title", "discount_pct", "cashback_pct", "valid_to", "publisher_business_id"}
    ),
    "cashback_threshold": frozenset({"balance", "currency", "threshold"}),
    "cashback_expiry": frozenset({"expiring_amount", "currency", "expiry_date", "balance"}),
}


class TriggerSpecError(ValueError):
    """One or more trigger files are invalid; `problems` lists `<file>: <field>: <what>`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("Invalid trigger specs:\n  " + "\n  ".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Audience(_Strict):
    """Which customers may qualify: a table/model (optionally filtered) or a SELECT.

    Either form must yield `business_id` and `customer_id`; the kind's occasions are
    kept only for those pairs. Empty (the default) means every customer of the kind.
    """

    model: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"
    )
    where: str | None = None
    sql: str | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Audience:
        if self.sql and (self.model or self.where):
            raise ValueError("give either `sql` or `model` (+ optional `where`), not both")
        if self.where and not self.model:
            raise ValueError("`where` needs `model` (the table it filters)")
        return self

    def to_sql(self) -> str | None:
        """SELECT business_id, customer_id … or None when the audience is everyone."""
        if self.sql:
            return f"SELECT business_id, customer_id FROM ({self.sql})"
        if self.model:
            where = f" WHERE {self.where}" if self.where else ""
            return f"SELECT business_id, customer_id FROM {self.model}{where}"
        return None


class Template(_Strict):
    name: str = Field(min_length=1, description="template name at the provider / in YAML")
    language: str = "ru"
    text: str = Field(min_length=1)
    defaults: dict[str, str] = Field(
        default_factory=dict, description="value used when a variable renders empty"
    )

    def fields(self) -> list[str]:
        """Variable names in order of appearance (validated by TriggerSpec)."""
        return [f for _, f, _, _ in string.Formatter().parse(self.text) if f is not None]

    def pieces(self) -> tuple[list[str], list[str], str]:
        """(literal before each field, field names, trailing literal) — for SQL rendering."""
        lits, names, tail = [], [], ""
        for literal, field, _, _ in string.Formatter().parse(self.text):
            if field is None:
                tail += literal
            else:
                lits.append(tail + literal)
                tail = ""
                names.append(field)
        return lits, names, tail

    def render(self, variables: dict[str, str]) -> str:
        """Python rendering with the same rules as the SQL one (for previews and tests)."""
        lits, names, tail = self.pieces()
        out = []
        for lit, name in zip(lits, names, strict=True):
            if name not in variables:
                raise KeyError(f"template {self.name!r}: variable {name!r} has no value")
            out.append(lit + (variables[name] or self.defaults.get(name, "")))
        return "".join(out) + tail


class UpliftTargeting(_Strict):
    """Send only where the message pays: expected incremental revisits (the customer's
    latest `ml.uplift_scores.uplift` for this trigger, ml/uplift.py) × value of a revisit
    > message cost. Customers without a score are not sent; the holdout is still drawn
    among those that pass, so the campaign keeps measuring its lift."""

    message_cost: float = Field(ge=0, description="cost of one message, in the currency")
    value_per_revisit: float | None = Field(
        default=None,
        gt=0,
        description="value of one revisit; None = the customer's average visit amount",
    )


class FrequencyCap(_Strict):
    """At most `max_messages` messages (any trigger) per customer per business in `per_days`."""

    max_messages: int = Field(ge=1, le=100)
    per_days: int = Field(ge=1, le=365)


class QuietHours(_Strict):
    """Local (business time zone) interval [start, end) when nothing is sent; may wrap midnight."""

    start: time = time(21, 0)
    end: time = time(9, 0)

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("start and end are equal; omit quiet_hours instead")
        return self


class Validity(_Strict):
    valid_from: date | None = None
    valid_to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Validity:
        if self.valid_from and self.valid_to and self.valid_to < self.valid_from:
            raise ValueError(f"valid_to {self.valid_to} is before valid_from {self.valid_from}")
        return self


# --- schedule --------------------------------------------------------------------------

# (name, lowest, highest, names accepted for values) of the five cron fields
_CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun",
                      "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)  # fmt: skip
_CRON_ITEM = re.compile(r"^(?P<range>\*|(?P<lo>\w+)(?:-(?P<hi>\w+))?)(?:/(?P<step>\d+))?$")


def _cron_value(text: str, field: tuple[str, int, int, Sequence[str]]) -> int:
    label, lowest, highest, names = field
    if text.lower() in names:
        return names.index(text.lower()) + (1 if label == "month" else 0)
    if not text.isdigit():
        raise ValueError(f"{label}: {text!r} is not a number")
    value = int(text)
    if not lowest <= value <= highest:
        raise ValueError(f"{label}: {value} is outside {lowest}–{highest}")
    return value


def check_cron(expression: str) -> str:
    """A five-field cron expression (`*`, numbers, `a-b`, `/step`, lists, month and weekday
    names); ValueError naming the field otherwise. Returns it with single spaces."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(
            f"{expression!r}: expected 5 fields (minute hour day-of-month month day-of-week)"
        )
    for part, field in zip(parts, _CRON_FIELDS, strict=True):
        for item in part.split(","):
            match = _CRON_ITEM.match(item)
            if not match:
                raise ValueError(f"{field[0]}: cannot read {item!r}")
            if match["step"] is not None and int(match["step"]) == 0:
                raise ValueError(f"{field[0]}: step 0 in {item!r}")
            if match["lo"] is not None:
                lo = _cron_value(match["lo"], field)
                if match["hi"] is not None and _cron_value(match["hi"], field) < lo:
                    raise ValueError(f"{field[0]}: range {item!r} runs backwards")
    return " ".join(parts)


class Schedule(_Strict):
    """When a trigger is planned live: the planning job it belongs to and that job's cron.

    Triggers naming the same `job` are planned together in one run (see `planning_jobs`).
    Planning looks 24 hours ahead and places each send at the business's local time, so
    the cron says how often plans are refreshed, not when messages go out.
    """

    job: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    cron: str = Field(min_length=1, description="five-field cron expression, in `timezone`")
    name: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]*$",
        max_length=64,
        description="schedule name; default `<job>_schedule`",
    )
    timezone: str = Field(default="UTC", description="IANA zone the cron is read in")

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        return check_cron(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r}") from None
        return value


# --- kind parameters -------------------------------------------------------------------


class BirthdayParams(_Strict):
    days_before: int = Field(default=0, ge=0, le=30)


class AppointmentReminderParams(_Strict):
    hours_before: float = Field(gt=0, le=24 * 14)
    min_lead_hours: float = Field(
        default=0.5, ge=0, description="not sent when less than this is left (occasion passed)"
    )
    label: str | None = Field(default=None, pattern=r"^[a-z0-9_]+$")

    @model_validator(mode="after")
    def _lead(self) -> AppointmentReminderParams:
        if self.min_lead_hours >= self.hours_before:
            raise ValueError("min_lead_hours must be smaller than hours_before")
        return self

    @property
    def occasion_label(self) -> str:
        return self.label or f"{self.hours_before:g}h"


def _check_segments(segments: Iterable[str]) -> None:
    bad = sorted(set(segments) - set(SEGMENTS))
    if bad:
        raise ValueError(f"unknown segment(s) {bad}; known: {list(SEGMENTS)}")


class WinbackParams(_Strict):
    segments: list[str] = Field(default=["at_risk", "cant_lose_them"], min_length=1)
    score_min: float | None = Field(default=None, ge=0, le=1)
    score_max: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> WinbackParams:
        _check_segments(self.segments)
        lo, hi = self.score_min, self.score_max
        if lo is not None and hi is not None and hi < lo:
            raise ValueError("score_max is below score_min")
        return self

    @property
    def uses_score(self) -> bool:
        return self.score_min is not None or self.score_max is not None


class SegmentOfferParams(_Strict):
    offers: dict[str, str] = Field(min_length=1, description="segment → offer line ({offer})")

    @model_validator(mode="after")
    def _check(self) -> SegmentOfferParams:
        _check_segments(self.offers)
        return self


class PartnerOfferParams(_Strict):
    sends_per_remaining_slot: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="plan at most remaining capacity × this many sends per offer and run",
    )
    exclude_publisher_customers: bool = True


class CashbackThresholdParams(_Strict):
    threshold: Decimal = Field(gt=0, decimal_places=2)
    lookback_days: int = Field(default=14, ge=1, le=365)


class CashbackExpiryParams(_Strict):
    expire_after_days: int = Field(default=180, ge=1, le=3650)
    warn_days: int = Field(default=14, ge=1, le=365)
    min_amount: Decimal = Field(default=Decimal("1.00"), ge=0, decimal_places=2)


# --- the spec --------------------------------------------------------------------------


class _SpecBase(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    description: str = ""
    enabled: bool = True
    audience: Audience = Audience()
    channels: list[Channel] = Field(min_length=1)
    template: Template
    holdout_pct: int = Field(default=0, ge=0, le=100)
    frequency_cap: FrequencyCap
    quiet_hours: QuietHours = QuietHours()
    send_at_local: time | None = Field(
        default=None, description="preferred local time of day (e.g. the morning for birthdays)"
    )
    expires_after_hours: float = Field(
        default=48, gt=0, description="for kinds without a natural end: send_at + this"
    )
    validity: Validity = Validity()
    priority: int = Field(default=0, ge=-1000, le=1000)
    requires_marketing_consent: bool = True
    campaign_period: Literal["week", "month", "year", "none"] = "month"
    schedule: Schedule | None = Field(
        default=None, description="planning job and cron; None = planned on demand only"
    )
    uplift_targeting: UpliftTargeting | None = Field(
        default=None, description="send only where uplift × value > cost (ml.uplift_scores)"
    )

    @model_validator(mode="after")
    def _check_template(self) -> _SpecBase:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels: a channel is listed twice")
        allowed = COMMON_VARIABLES | KIND_VARIABLES[self.kind]  # type: ignore[attr-defined]
        try:
            parsed = list(string.Formatter().parse(self.template.text))
        except ValueError as ex:
            raise ValueError(f"template.text: cannot parse: {ex}") from ex
        for _, field, spec, conversion in parsed:
            if field is None:
                continue
            if spec or conversion:
                raise ValueError(
                    f"template.text: field {{{field}}}: format specs and conversions "
                    "are not supported, use plain {name}"
                )
            if field not in allowed:
                raise ValueError(
                    f"template.text: unknown variable {{{field}}} for kind {self.kind!r}; "  # type: ignore[attr-defined]
                    f"allowed: {sorted(allowed)}"
                )
        unknown_defaults = sorted(set(self.template.defaults) - allowed)
        if unknown_defaults:
            raise ValueError(f"template.defaults: unknown variable(s) {unknown_defaults}")
        return self

    @property
    def requires_score(self) -> bool:
        return False

    def active_on(self, day: date) -> bool:
        v = self.validity
        return (v.valid_from is None or v.valid_from <= day) and (
            v.valid_to is None or day <= v.valid_to
        )


class BirthdayTrigger(_SpecBase):
    kind: Literal["birthday"]
    params: BirthdayParams = BirthdayParams()


class AppointmentReminderTrigger(_SpecBase):
    kind: Literal["appointment_reminder"]
    params: AppointmentReminderParams


class WinbackTrigger(_SpecBase):
    kind: Literal["winback"]
    params: WinbackParams = WinbackParams()

    @property
    def requires_score(self) -> bool:
        return self.params.uses_score


class SegmentOfferTrigger(_SpecBase):
    kind: Literal["segment_offer"]
    params: SegmentOfferParams


class PartnerOfferTrigger(_SpecBase):
    kind: Literal["partner_offer"]
    params: PartnerOfferParams = PartnerOfferParams()


class CashbackThresholdTrigger(_SpecBase):
    kind: Literal["cashback_threshold"]
    params: CashbackThresholdParams


class CashbackExpiryTrigger(_SpecBase):
    kind: Literal["cashback_expiry"]
    params: CashbackExpiryParams = CashbackExpiryParams()


TriggerSpec = Annotated[
    BirthdayTrigger
    | AppointmentReminderTrigger
    | WinbackTrigger
    | SegmentOfferTrigger
    | PartnerOfferTrigger
    | CashbackThresholdTrigger
    | CashbackExpiryTrigger,
    Field(discriminator="kind"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(TriggerSpec)


class Kind(StrEnum):
    birthday = "birthday"
    appointment_reminder = "appointment_reminder"
    winback = "winback"
    segment_offer = "segment_offer"
    partner_offer = "partner_offer"
    cashback_threshold = "cashback_threshold"
    cashback_expiry = "cashback_expiry"


def _format_error(source: str, err: dict[str, Any]) -> str:
    kinds = {k.value for k in Kind}
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in kinds]
    field = ".".join(loc) or "(top level)"
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown field (check the spelling)"
    elif err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        field = "kind"
        given = (err.get("ctx") or {}).get("tag")
        known = ", ".join(k.value for k in Kind)
        msg = f"unknown kind {given!r}; use one of: {known}" if given else f"required ({known})"
    return f"{source}: {field}: {msg}"


def parse_trigger(data: Any, source: str = "<trigger>") -> Any:
    """Validate one spec (a mapping from YAML) → a *Trigger model; TriggerSpecError if bad."""
    if not isinstance(data, dict):
        raise TriggerSpecError([f"{source}: (top level): expected a mapping of fields"])
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as ex:
        raise TriggerSpecError([_format_error(source, e) for e in ex.errors()]) from None


def load_trigger_file(path: Path) -> Any:
    """Load and validate one `<name>.yaml`; the `name` field must equal the file stem."""
    source = path.name
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as ex:
        raise TriggerSpecError([f"{source}: (YAML): {ex}"]) from None
    spec = parse_trigger(data, source)
    if spec.name != path.stem:
        raise TriggerSpecError(
            [f"{source}: name: {spec.name!r} differs from the file name {path.stem!r}"]
        )
    return spec


def load_triggers(directory: Path | None = None) -> list[Any]:
    """Every `*.yaml`/`*.yml` in the directory (default `activation/triggers/`), by name.

    All files are checked before raising, so one error message lists every problem.
    """
    directory = directory or TRIGGERS_DIR
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    specs, problems = [], []
    for path in paths:
        try:
            specs.append(load_trigger_file(path))
        except TriggerSpecError as ex:
            problems.extend(ex.problems)
    if not problems:
        problems = _job_problems(specs)
    if problems:
        raise TriggerSpecError(problems)
    return sorted(specs, key=lambda s: s.name)


# --- planning jobs ---------------------------------------------------------------------


@dataclass(frozen=True)
class PlanningJob:
    """Triggers planned together on one schedule (from their `schedule` blocks)."""

    name: str
    triggers: tuple[str, ...]
    cron: str
    schedule_name: str
    timezone: str = "UTC"
    descriptions: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """What the job plans: each trigger with its description."""
        lines = [
            f"- {t}: {d}" if d else f"- {t}"
            for t, d in zip(self.triggers, self.descriptions, strict=True)
        ]
        return "\n".join(["Plans these triggers together, live into the outbox:", *lines])


def _job_problems(specs: Sequence[Any]) -> list[str]:
    """Disagreements between triggers of one job, and schedule names used by two jobs."""
    problems: list[str] = []
    by_job: dict[str, list[Any]] = {}
    for spec in specs:
        if spec.schedule is not None:
            by_job.setdefault(spec.schedule.job, []).append(spec)
    owner: dict[str, str] = {}
    for job, members in sorted(by_job.items()):
        first = members[0]
        for field in ("cron", "timezone"):
            values = {getattr(m.schedule, field) for m in members}
            if len(values) > 1:
                given = ", ".join(f"{m.name}: {getattr(m.schedule, field)!r}" for m in members)
                problems.append(
                    f"{first.name}.yaml: schedule.{field}: triggers of job {job!r} "
                    f"disagree ({given})"
                )
        names = {m.schedule.name for m in members if m.schedule.name}
        if len(names) > 1:
            problems.append(
                f"{first.name}.yaml: schedule.name: triggers of job {job!r} name "
                f"different schedules {sorted(names)}"
            )
        for schedule_name in sorted(names) or [f"{job}_schedule"]:
            if schedule_name in owner:
                problems.append(
                    f"{first.name}.yaml: schedule.name: {schedule_name!r} is already the "
                    f"schedule of job {owner[schedule_name]!r}"
                )
            owner[schedule_name] = job
    return problems


def planning_jobs(specs: Sequence[Any]) -> list[PlanningJob]:
    """The scheduled triggers grouped by `schedule.job`, by job name; triggers by name.

    Raises TriggerSpecError when triggers of one job disagree on cron, time zone or
    schedule name, or two jobs claim one schedule name (`load_triggers` checks this too).
    """
    problems = _job_problems(specs)
    if problems:
        raise TriggerSpecError(problems)
    by_job: dict[str, list[Any]] = {}
    for spec in specs:
        if spec.schedule is not None:
            by_job.setdefault(spec.schedule.job, []).append(spec)
    jobs = []
    for job, members in sorted(by_job.items()):
        members.sort(key=lambda s: s.name)
        names = [m.schedule.name for m in members if m.schedule.name]
        jobs.append(
            PlanningJob(
                name=job,
                triggers=tuple(m.name for m in members),
                cron=members[0].schedule.cron,
                schedule_name=names[0] if names else f"{job}_schedule",
                timezone=members[0].schedule.timezone,
                descriptions=tuple(m.description for m in members),
            )
        )
    return jobs


AnyTrigger = (
    BirthdayTrigger
    | AppointmentReminderTrigger
    | WinbackTrigger
    | SegmentOfferTrigger
    | PartnerOfferTrigger
    | CashbackThresholdTrigger
    | CashbackExpiryTrigger
)
