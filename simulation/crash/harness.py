"""Random-kill crash harness: SIGKILL each area of the pipeline at seeded random moments,
rerun it to completion, and check what a crash must never do.

Four areas, each run by `simulation.crash.child` in its own process group (dbt's own
subprocess dies with it):

- ingestion: CRM API sync (the `simulation.crm_api` stand-in), CRM file drops, the webhook
  spool, the message export, partner offers and feeds;
- spool: the webhook spool load alone (a short phase of ingestion, given its own window);
- dbt: `dbt build` of every model;
- activation: live plan, accrual enqueue, delivery to the provider stand-ins.

For each area an uninterrupted reference run fixes what the area must produce and how long
it takes. Each trial starts from the same state as the reference, kills the child after a
delay drawn uniformly from [0, reference duration) (`random.Random(seed)`: reproducible,
never aimed at a chosen point), sometimes kills the first rerun too, then reruns until the
area completes, and compares:

- raw tables (ingestion): every source row of the reference present with the same content
  (lost), no source row (key, `_source`, `_row`) stored twice (duplicated);
- marts (dbt): the multiset of whole rows of every table of `marts` equals the reference's;
- the provider stand-ins (activation): the ledger and SMS applied every key exactly once,
  Telegram at most twice, WhatsApp at most once more per kill (no status webhook comes
  back here), and any effect beyond the first only where the outbox row notes the resend
  after an unknown outcome (README "Delivery guarantees"); no key the reference delivered
  without an effect; the activation log agrees with the outbox;
- the warehouse opens and every table in it can be read.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import warehouse
from simulation.crash.child import AREAS
from warehouse.schema import DATABASES, RAW_TABLES

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CRM_TOKEN = "crash-harness-crm-token"
# Delivery leases: a killed run's claimed rows go back to the queue after this long (long
# enough that a loaded machine does not lose leases of rows waiting in a run's queue).
LEASE_S = 3.0
# Per-request latency of the provider stand-ins, so delivery lasts long enough for kills to
# land in it too (a stand-in answers in well under a millisecond otherwise).
PROVIDER_DELAY_S = 0.05
PLAN_LAG = timedelta(hours=24)  # the planner's default horizon
RESEND_NOTE = "resent after an unknown outcome"
# Raw tables compared row by row (load_batches is the loader's own bookkeeping).
SOURCE_TABLES = [t for t in RAW_TABLES if t != "load_batches"]


# --- running the child -------------------------------------------------------------------


@dataclass
class Attempt:
    """One start of the child: killed after `kill_after_s`, or run to its end."""

    kill_after_s: float | None
    killed: bool = False
    exit_code: int | None = None
    phase: str = ""  # the last phase the child had entered when it was killed or ended
    seconds: float = 0.0
    stderr: str = ""


def trial_settings(trial: Path) -> Any:
    """The settings a child on `trial` composes (the trial directory is its data dir)."""
    from revisit.settings import Settings

    return Settings(data_dir=trial)


def _child_env(trial: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    return {**env, "REVISIT_DATA_DIR": str(trial), "REVISIT_CRM_API_TOKEN": CRM_TOKEN}


def _last_phase(trial: Path) -> str:
    path = trial / "progress"
    lines = path.read_text().splitlines() if path.exists() else []
    return lines[-1].split()[0] if lines else "(not started)"


def _ready(trial: Path) -> bool:
    path = trial / "progress"
    return path.exists() and "\nready " in "\n" + path.read_text()


def run_child(area: str, trial: Path, kill_after_s: float | None, timeout_s: float) -> Attempt:
    """Start the area's child on `trial`; SIGKILL its process group `kill_after_s` after it
    reported `ready` (imports done), unless it ended first. `seconds` counts from `ready`."""
    attempt = Attempt(kill_after_s)
    (trial / "progress").unlink(missing_ok=True)
    with (trial / "stderr.log").open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "simulation.crash.child", area, str(trial)],
            cwd=PROJECT_ROOT, env=_child_env(trial), stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,  # its own process group: dbt's process dies with it
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout_s
            while not _ready(trial) and child.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            started = time.monotonic()
            wait = max(0.0, deadline - started) if kill_after_s is None else kill_after_s
            try:
                attempt.exit_code = child.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                attempt.phase = _last_phase(trial)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                attempt.killed = kill_after_s is not None
                attempt.exit_code = child.returncode
            attempt.seconds = round(time.monotonic() - started, 3)
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # any grandchild left behind
    if not attempt.killed:
        attempt.phase = _last_phase(trial)
        if attempt.exit_code != 0:
            attempt.stderr = (trial / "stderr.log").read_text()[-3000:]
    return attempt


# --- what an area produced ---------------------------------------------------------------


def _open_every_table(client: warehouse.Client) -> int:
    """Read every table of Revisit's databases end to end (a corrupted part fails here)."""
    tables = client.query(
        "SELECT database, name FROM system.tables WHERE database IN {dbs:Array(String)} "
        "AND engine NOT IN ('View', 'MaterializedView')",
        parameters={"dbs": list(DATABASES)},
    ).result_rows
    for database, name in tables:
        client.command(f"SELECT sum(cityHash64(*)) FROM `{database}`.`{name}`")
    return len(tables)


def _key_expr(order_by: str) -> str:
    return order_by if order_by.startswith("(") else f"({order_by})"


# The source's content of a raw row: everything but the load bookkeeping.
CONTENT = "cityHash64(* EXCEPT (_batch_id, _source, _row, _loaded_at, _version))"


def raw_snapshot(client: warehouse.Client) -> dict[str, dict[str, Any]]:
    """Per raw table: the latest content of every key (FINAL); the source rows stored more
    than once (the same key at the same place of the same source: a batch loaded twice);
    and the rows the source delivered again with the same content elsewhere (the CRM API's
    inclusive `updated_since` re-serves the record at a resumed cursor — the raw tables
    collapse such copies by key, as they do any re-delivery)."""
    out: dict[str, dict[str, Any]] = {}
    for table in SOURCE_TABLES:
        key = _key_expr(RAW_TABLES[table][1])
        latest = client.query(
            f"SELECT toString({key}) AS k, {CONTENT} FROM raw.{table} FINAL"
        ).result_rows
        rows, stored_twice, copies = client.query(
            f"SELECT count(), count() - uniqExact({key}, _source, _row), "
            f"count() - uniqExact({key}, {CONTENT}) FROM raw.{table}"
        ).result_rows[0]
        out[table] = {
            "latest": dict(latest), "rows": rows, "stored_twice": stored_twice,
            "redelivered": copies - stored_twice,
        }  # fmt: skip
    return out


def mart_snapshot(client: warehouse.Client) -> dict[str, Counter[int]]:
    """Per table of `marts`: the multiset of whole rows (as hashes)."""
    tables = client.query(
        "SELECT name FROM system.tables WHERE database = 'marts' "
        "AND engine NOT IN ('View', 'MaterializedView') ORDER BY name"
    ).result_rows
    return {
        name: Counter(
            h for (h,) in client.query(f"SELECT cityHash64(*) FROM marts.`{name}`").result_rows
        )
        for (name,) in tables
    }


@dataclass
class Findings:
    """What one trial's final state lost or duplicated against the reference."""

    lost: int = 0
    duplicated: int = 0
    double_effects: int = 0
    documented_resends: int = 0
    redelivered: int = 0  # raw rows a source served again, collapsed by key (not a loss)
    warehouse_ok: bool = True
    details: list[str] = field(default_factory=list)

    def add(self, kind: str, n: int, where: str) -> None:
        if n:
            setattr(self, kind, getattr(self, kind) + n)
            self.details.append(f"{kind} {n} in {where}")


def compare_raw(reference: dict, got: dict, findings: Findings) -> None:
    for table, ref in reference.items():
        now = got[table]
        missing = [k for k, h in ref["latest"].items() if now["latest"].get(k) != h]
        extra = [k for k in now["latest"] if k not in ref["latest"]]
        findings.add("lost", len(missing), f"raw.{table} (e.g. {missing[:3]})")
        findings.add("duplicated", len(extra), f"raw.{table}: keys not in the reference")
        findings.add("duplicated", now["stored_twice"], f"raw.{table}: source rows stored twice")
        findings.redelivered += max(0, now["redelivered"] - ref["redelivered"])


def compare_marts(reference: dict[str, Counter[int]], got: dict[str, Counter[int]],
                  findings: Findings) -> None:  # fmt: skip
    for table in sorted(set(reference) | set(got)):
        ref, now = reference.get(table, Counter()), got.get(table, Counter())
        findings.add("lost", sum((ref - now).values()), f"marts.{table}")
        findings.add("duplicated", sum((now - ref).values()), f"marts.{table}")


# --- the workspace: sources and stand-ins shared by every trial -------------------------


@dataclass
class Workspace:
    """Generated sources, a filled webhook spool, the CRM and provider stand-ins."""

    root: Path
    source_dir: Path
    spool_template: Path
    as_of: str
    now: str  # the planning time of every activation run (fixed: reruns plan the same)
    crm_api_url: str
    standins: Any  # simulation.providers.StandinCluster

    def trial_config(self, trial: Path) -> dict[str, Any]:
        providers = self.standins.providers_config(
            lease_s=LEASE_S, http_timeout_s=5.0, backoff_base_s=0.02, backoff_max_s=0.1,
            retry_later_s=0.0, concurrency=4, claim_batch=8,
        ).without_rate_limits()  # fmt: skip
        return {
            "source_dir": str(self.source_dir),
            "crm_api_url": self.crm_api_url,
            "as_of": self.as_of,
            "now": self.now,
            "providers": {
                k: v.get_secret_value() if hasattr(v, "get_secret_value") else v
                for k, v in providers.model_dump().items()
            },
        }


def _fill_spool(root: Path, source_dir: Path) -> Path:
    """Replay the generated webhooks into the real receiver (its own process) and stop it:
    the closed spool segments every ingestion trial starts from."""
    from simulation.webhook_replay import receiver_process, replay

    data_dir = root / "receiver"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVISIT_")}
    env["REVISIT_DATA_DIR"] = str(data_dir)
    with receiver_process(env, cwd=PROJECT_ROOT) as url:
        for requests_file in sorted((source_dir / "webhooks").glob("*.jsonl")):
            replay(requests_file, url, concurrency=16)
    return data_dir / "spool"


@contextlib.contextmanager
def workspace(root: Path, *, customers: int, seed: int) -> Iterator[Workspace]:
    """Generate the sources (the receiver's secrets sign the webhooks), fill the spool,
    and serve the CRM and provider stand-ins for the duration of the block."""
    from revisit.settings import Settings
    from simulation.crm_api import serve_in_background
    from simulation.ecosystem import WebhookSecrets, generate
    from simulation.providers import run_standins

    root.mkdir(parents=True, exist_ok=True)
    receiver_settings = Settings(data_dir=root / "receiver")
    secrets = WebhookSecrets(
        whatsapp_app_secret=receiver_settings.whatsapp_app_secret.get_secret_value(),
        telegram_secret_token=receiver_settings.telegram_secret_token.get_secret_value(),
        sms_webhook_secret=receiver_settings.sms_webhook_secret.get_secret_value(),
    )
    source_dir = root / "sources"
    # Delivery runs on the real clock. Planning a day back (one horizon) makes every planned
    # send slot due now, most of them not yet expired; the planning time is fixed, so
    # every run plans the same messages.
    now = datetime.now(UTC) - PLAN_LAG
    manifest = generate(
        source_dir, customers=customers, seed=seed, secrets=secrets, as_of=now.date(),
        processes=1,
    )  # fmt: skip
    spool = _fill_spool(root, source_dir)
    with (
        serve_in_background(source_dir, token=CRM_TOKEN) as crm_api,
        run_standins() as standins,
    ):
        yield Workspace(
            root, source_dir, spool, manifest["as_of"], now.isoformat(timespec="seconds"),
            crm_api.base_url, standins,
        )  # fmt: skip


# --- areas -------------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    attempts: list[Attempt]
    findings: Findings

    @property
    def kills(self) -> int:
        return sum(a.killed for a in self.attempts)


@dataclass
class AreaReport:
    area: str
    reference_s: float
    trials: list[Trial] = field(default_factory=list)
    not_landed: int = 0  # draws where the child finished before its kill moment

    def summary(self) -> dict[str, Any]:
        killed = [a for t in self.trials for a in t.attempts if a.killed]
        return {
            "area": self.area,
            "reference_s": self.reference_s,
            "trials": len(self.trials),
            "kills": len(killed),
            "kills_by_phase": dict(Counter(a.phase for a in killed).most_common()),
            # The seeded draws: kill moment / reference duration (the same for a seed on any
            # machine; the seconds scale with the machine's measured reference run).
            "kill_fractions": [
                round((a.kill_after_s or 0.0) / self.reference_s, 3) for a in killed
            ],
            "not_landed": self.not_landed,
            "reruns": sum(len(t.attempts) - 1 for t in self.trials),
            "lost": sum(t.findings.lost for t in self.trials),
            "duplicated": sum(t.findings.duplicated for t in self.trials),
            "double_effects": sum(t.findings.double_effects for t in self.trials),
            "documented_resends": sum(t.findings.documented_resends for t in self.trials),
            "redelivered": sum(t.findings.redelivered for t in self.trials),
            "warehouse_ok": sum(t.findings.warehouse_ok for t in self.trials),
            "problems": [
                {
                    "trial": t.number,
                    "details": t.findings.details,
                    "attempts": [asdict(a) for a in t.attempts],
                }
                for t in self.trials
                if t.findings.details
            ],
        }


class Area:
    """One area: the state a run starts from, and what its end state must equal."""

    name: str = ""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.reference: Any = None

    def fresh(self, trial: Path) -> None:
        """The state every run of this area starts from, in `trial`."""
        if trial.exists():
            shutil.rmtree(trial)
        trial.mkdir(parents=True)
        (trial / "config.json").write_text(json.dumps(self.ws.trial_config(trial)))

    def snapshot(self, trial: Path) -> Any:
        raise NotImplementedError

    def compare(self, got: Any, findings: Findings, crashes: int) -> None:
        raise NotImplementedError

    def check(self, trial: Path, findings: Findings, crashes: int) -> None:
        """The trial's end state against the reference; a warehouse (or outbox) that does
        not open or cannot be read is itself the finding."""
        try:
            got = self.snapshot(trial)
        except Exception as ex:  # whatever the failure, it is the finding
            findings.warehouse_ok = False
            findings.details.append(f"warehouse or state does not open or read: {ex!r}")
            return
        self.compare(got, findings, crashes)


def _copy_warehouse(source: Path, trial: Path) -> None:
    shutil.copytree(source / "warehouse", trial / "warehouse", symlinks=True)


class Ingestion(Area):
    name = "ingestion"

    def fresh(self, trial: Path) -> None:
        super().fresh(trial)
        shutil.copytree(self.ws.spool_template, trial / "spool")

    def snapshot(self, trial: Path) -> Any:
        with warehouse.connect(trial_settings(trial).warehouse_dsn) as client:
            _open_every_table(client)
            return raw_snapshot(client)

    def compare(self, got: Any, findings: Findings, crashes: int) -> None:
        compare_raw(self.reference, got, findings)


class SpoolLoad(Ingestion):
    """The webhook spool load alone, from the same filled spool into an empty warehouse."""

    name = "spool"


class Dbt(Area):
    name = "dbt"

    def __init__(self, ws: Workspace, raw_from: Path) -> None:
        super().__init__(ws)
        self.raw_from = raw_from  # a trial dir whose warehouse holds the loaded raw tables

    def fresh(self, trial: Path) -> None:
        super().fresh(trial)
        _copy_warehouse(self.raw_from, trial)

    def snapshot(self, trial: Path) -> Any:
        with warehouse.connect(trial_settings(trial).warehouse_dsn) as client:
            _open_every_table(client)
            return mart_snapshot(client)

    def compare(self, got: Any, findings: Findings, crashes: int) -> None:
        compare_marts(self.reference, got, findings)


class Activation(Area):
    name = "activation"

    def __init__(self, ws: Workspace, marts_from: Path) -> None:
        super().__init__(ws)
        self.marts_from = marts_from  # a trial dir whose warehouse holds the built marts

    def fresh(self, trial: Path) -> None:
        super().fresh(trial)
        _copy_warehouse(self.marts_from, trial)
        self.ws.standins.reset()
        for provider in self.ws.standins.urls:
            self.ws.standins.admin(provider).set_faults(delay_s=PROVIDER_DELAY_S)

    def snapshot(self, trial: Path) -> Any:
        from activation.outbox import Outbox

        effects = {p: self.ws.standins.admin(p).effects() for p in self.ws.standins.urls}
        outbox = Outbox(trial_settings(trial).state_dsn)
        try:
            rows = {kind: outbox.rows(kind) for kind in ("message", "accrual")}
        finally:
            outbox.dispose()
        with warehouse.connect(trial_settings(trial).warehouse_dsn) as client:
            _open_every_table(client)
            logged = {
                kind: dict(
                    client.query(
                        f"SELECT idempotency_key, state FROM activation.{kind}_log FINAL"
                    ).result_rows
                )
                for kind in ("message", "accrual")
            }
        return {"effects": effects, "rows": rows, "logged": logged}

    def compare(self, got: Any, findings: Findings, crashes: int) -> None:
        check_deliveries(self.reference, got, findings, datetime.now(UTC), crashes)


def _provider(kind: str, row: dict[str, Any]) -> str:
    return "ledger" if kind == "accrual" else str(row["channel"]).split(".")[-1]


def _state(row: dict[str, Any]) -> str:
    return str(row["state"]).split(".")[-1]


def check_deliveries(
    reference: dict[str, Any],
    got: dict[str, Any],
    findings: Findings,
    now: datetime,
    crashes: int,
) -> None:
    """The stand-ins' effects against the outbox and the reference run (see module doc),
    after `crashes` kills of delivery: the README's "Delivery guarantees" allow the ledger
    and SMS one effect, Telegram (resend_once) two, WhatsApp (no status webhook loaded
    here) one more per crash; every effect beyond the first must be noted on the row."""
    limits = {"ledger": 1, "sms": 1, "telegram": 2, "whatsapp": 1 + crashes}
    effects = got["effects"]
    seen: dict[str, set[str]] = {p: set() for p in effects}
    for kind in ("message", "accrual"):
        rows = {r["idempotency_key"]: r for r in got["rows"][kind]}
        ref_rows = {r["idempotency_key"]: r for r in reference["rows"][kind]}
        findings.add("lost", len(set(ref_rows) - set(rows)), f"outbox {kind}: keys never enqueued")
        findings.add("duplicated", len(set(rows) - set(ref_rows)), f"outbox {kind}: extra keys")
        for key, row in rows.items():
            provider = _provider(kind, row)
            seen[provider].add(key)
            n = effects[provider].get(key, 0)
            note = row.get("last_error") or ""
            if n > limits.get(provider, 1):
                findings.add("double_effects", 1, f"{provider} {key}: {n} effects")
            elif n > 1 and RESEND_NOTE not in note:
                findings.add("double_effects", 1, f"{provider} {key}: {n} effects, no resend noted")
            elif n > 1:
                findings.documented_resends += n - 1
            if _state(row) == "sent" and n == 0:
                findings.add("lost", 1, f"{provider} {key}: sent in the outbox, no effect")
            ref_row = ref_rows.get(key)
            delivered_before = ref_row is not None and reference["effects"][provider].get(key)
            # A message the reference delivered may expire before a later trial's rerun
            # reaches it: past its expiry, skipping it is the outbox doing its job.
            expired = row.get("reason") == "expired" and _aware(row["expires_at"]) <= now
            if delivered_before and n == 0 and not expired:
                findings.add("lost", 1, f"{provider} {key}: delivered in the reference, not now")
        logged = got["logged"][kind]
        mislogged = [k for k, r in rows.items() if str(logged.get(k)) != _state(r)]
        findings.add("lost", len(mislogged), f"activation.{kind}_log disagrees {mislogged[:3]}")
    for provider, applied in effects.items():
        stray = set(applied) - seen[provider]
        findings.add("duplicated", len(stray), f"{provider}: effects of keys not in the outbox")


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return datetime.max.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- the run -----------------------------------------------------------------------------


def run_area(
    area: Area,
    root: Path,
    *,
    kills: int,
    rng: random.Random,
    second_kill_share: float = 0.25,
    timeout_s: float = 600.0,
    progress: Any = None,
) -> AreaReport:
    """The reference run, then trials until `kills` first kills have landed."""
    reference = root / area.name / "reference"
    area.fresh(reference)
    done = run_child(area.name, reference, None, timeout_s)
    if done.exit_code != 0:
        raise RuntimeError(f"the reference {area.name} run failed:\n{done.stderr}")
    area.reference = area.snapshot(reference)
    report = AreaReport(area.name, done.seconds)
    number = 0
    while sum(1 for t in report.trials if t.attempts[0].killed) < kills:
        number += 1
        if number > 3 * kills + 5:
            raise RuntimeError(f"{area.name}: too many kills did not land")
        trial = root / area.name / f"trial-{number:03d}"
        area.fresh(trial)
        first = run_child(area.name, trial, rng.random() * done.seconds, timeout_s)
        if not first.killed:
            report.not_landed += 1
            shutil.rmtree(trial)
            continue
        attempts = [first]
        if rng.random() < second_kill_share:
            attempts.append(run_child(area.name, trial, rng.random() * done.seconds, timeout_s))
        while attempts[-1].killed or attempts[-1].exit_code != 0:
            if len(attempts) > 6:
                break
            if area.name == "activation":
                time.sleep(LEASE_S + 0.2)  # the killed run's leases expire, its requests land
            attempts.append(run_child(area.name, trial, None, timeout_s))
        findings = Findings()
        if attempts[-1].exit_code != 0:
            findings.details.append(f"the rerun did not complete: {attempts[-1].stderr[-1500:]}")
            findings.warehouse_ok = False
        else:
            area.check(trial, findings, sum(a.killed for a in attempts))
        report.trials.append(Trial(number, attempts, findings))
        if progress:
            progress(area.name, report.trials[-1])
        if not findings.details:
            shutil.rmtree(trial)
    return report


def run_harness(
    root: Path,
    *,
    kills: int,
    seed: int,
    customers: int = 300,
    areas: tuple[str, ...] = AREAS,
    progress: Any = None,
) -> dict[str, Any]:
    """Every area in order (each one's reference run is the next one's starting state)."""
    started = time.monotonic()
    summaries = []
    with workspace(root, customers=customers, seed=seed) as ws:
        # dbt starts from the ingested raw tables; activation from the built marts.
        plan = {
            "ingestion": Ingestion(ws),
            "spool": SpoolLoad(ws),
            "dbt": Dbt(ws, root / "ingestion" / "reference"),
            "activation": Activation(ws, root / "dbt" / "reference"),
        }
        needed = set(areas)
        for later, earlier in (("activation", "dbt"), ("dbt", "ingestion")):
            if later in needed:
                needed.add(earlier)
        for name in AREAS:
            if name not in needed:
                continue
            # One random stream per area: an area's kill moments do not depend on which
            # other areas run.
            rng = random.Random(f"{seed}:{name}")
            count = kills if name in areas else 0
            report = run_area(plan[name], root, kills=count, rng=rng, progress=progress)
            if name in areas:
                summaries.append(report.summary())
    return {
        "seed": seed,
        "customers": customers,
        "kills_per_area": kills,
        "wall_s": round(time.monotonic() - started, 1),
        "areas": summaries,
    }


def clean(result: dict[str, Any]) -> bool:
    """No area lost, duplicated or doubled anything, and every warehouse opened."""
    return all(
        s["lost"] == s["duplicated"] == s["double_effects"] == 0
        and s["warehouse_ok"] == s["trials"]
        for s in result["areas"]
    )
