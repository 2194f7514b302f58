"""One business's report: each section's reading (one line saying what it shows), chart
and tables, in Russian or English."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from warehouse.report import charts
from warehouse.report.model import Report, Section, Table, fmt
from warehouse.report.vega import BLUE, ORANGE, Key

SLIPPING = ("at_risk", "cant_lose_them")

T: dict[str, dict[str, str]] = {
    "en": {
        "title": "Marketing report: {name}", "subtitle": "{period} · {currency} · as of {asof}",
        "no_data": "No data yet for this period.",
        "grid": "RFM grid", "segments": "Segments", "trend": "Segment trend (12 months)",
        "migration": "Segment migration", "campaigns": "Campaigns",
        "partners": "Partner offers and dashboard", "flows": "Cross-business flows",
        "score": "Revisit score",
        "m_panel": "Monetary M{m}", "cell": "Cell", "customers": "Customers",
        "customer_share": "Customers, share", "revenue_share": "Revenue, share",
        "grid_reading": "The largest cell is {cell} ({share} of customers, {rev} of revenue); "
        "the top-spending cells R3·M3 bring {top} of revenue.",
        "segment": "Segment", "action": "Recommended action", "revenue": "Revenue",
        "segments_reading": "{seg} is the largest segment ({share}); {risk} customers are "
        "At risk or Can't lose them.",
        "trend_reading": "Over {n} month ends, {seg} changed the most: {before} → {after}.",
        "from": "From", "to": "To", "new": "(new)",
        "migration_reading": "From {a} to {b}, {moved} customers changed segment; "
        "{slip} slipped into At risk or Can't lose them (outlined).",
        "trigger": "Trigger", "campaign": "Campaign", "sent": "Sent", "delivered": "Delivered",
        "read": "Read", "replied": "Replied", "rev7": "Revisited 7d", "rev30": "Revisited 30d",
        "holdout": "Holdout rate", "lift": "Lift 30d", "ci": "95% interval",
        "inc_rev": "Incremental revisits", "inc_money": "Incremental revenue",
        "verdict": "Verdict",
        "campaigns_reading": "{n} campaign(s) ran in the period: {sent} messages sent, "
        "{inc} incremental revisits and {money} incremental revenue over the holdout.",
        "metric": "Metric", "value": "This month", "previous": "Previous month",
        "change": "Change", "collaborations": "Active collaborations",
        "customers_sent": "Customers sent to partners",
        "customers_received": "Customers received", "new_customers": "Clients attracted",
        "rewards_earned": "Rewards earned", "rewards_paid": "Rewards paid",
        "cashback_accrued": "Points accrued", "cashback_spent": "Points spent",
        "offer": "Offer", "role": "Role", "partner": "Partner", "exposed": "Exposed",
        "redeemed": "Redeemed", "conversion": "Conversion", "conv_change": "Change vs prev.",
        "partners_reading": "{new} clients attracted through partners ({change} vs the "
        "previous month) in {collab} collaboration(s).",
        "direction": "Direction", "in": "came from", "out": "went to",
        "flows_reading": "{inn} customers also visited this business from partners, {out} "
        "went from it to partners; the largest flow is with {top}.",
        "probability": "predicted probability", "observed": "observed revisit rate",
        "distribution": "Distribution", "calibration": "Calibration", "decile": "decile",
        "lift_title": "Lift by decile",
        "score_reading": "Median revisit probability {median}; the top decile's customers "
        "revisit {lift}× as often as the average (model {version}, ROC-AUC {auc}).",
        "score_reading_short": "Median revisit probability {median} over {n} customers; "
        "outcomes of a scoring are not in yet (model {version}, held-out ROC-AUC {auc}).",
        "decile_col": "Decile", "mean_p": "Mean probability", "observed_col": "Revisited",
        "held_out": "Held-out evaluation of the promoted model and its baselines",
        "scorer": "Scorer", "top_decile": "Top-decile lift",
    },
    "ru": {
        "title": "Маркетинговый отчёт: {name}", "subtitle": "{period} · {currency} · на {asof}",
        "no_data": "Данных за этот период пока нет.",
        "grid": "RFM-сетка", "segments": "Сегменты", "trend": "Динамика сегментов (12 месяцев)",
        "migration": "Переходы между сегментами", "campaigns": "Кампании",
        "partners": "Партнёрские предложения", "flows": "Потоки между бизнесами",
        "score": "Вероятность повторного визита",
        "m_panel": "Траты M{m}", "cell": "Ячейка", "customers": "Клиентов",
        "customer_share": "Доля клиентов", "revenue_share": "Доля выручки",
        "grid_reading": "Самая большая ячейка — {cell} ({share} клиентов, {rev} выручки); "
        "ячейки R3·M3 с наибольшими тратами дают {top} выручки.",
        "segment": "Сегмент", "action": "Рекомендуемое действие", "revenue": "Выручка",
        "segments_reading": "Самый большой сегмент — «{seg}» ({share}); {risk} клиентов "
        "под угрозой ухода или их нельзя потерять.",
        "trend_reading": "За {n} месяцев сильнее всего изменился сегмент «{seg}»: "
        "{before} → {after}.",
        "from": "Откуда", "to": "Куда", "new": "(новые)",
        "migration_reading": "С {a} по {b} сегмент сменили {moved} клиентов; {slip} перешли "
        "в «Под угрозой ухода» или «Нельзя потерять» (обведены).",
        "trigger": "Триггер", "campaign": "Кампания", "sent": "Отправлено",
        "delivered": "Доставлено", "read": "Прочитано", "replied": "Ответили",
        "rev7": "Вернулись за 7 дн.", "rev30": "Вернулись за 30 дн.",
        "holdout": "Доля контрольной группы", "lift": "Прирост за 30 дн.",
        "ci": "95% интервал", "inc_rev": "Дополнительные визиты",
        "inc_money": "Дополнительная выручка", "verdict": "Вывод",
        "campaigns_reading": "Кампаний за период: {n}; отправлено {sent} сообщений, "
        "{inc} дополнительных визитов и {money} дополнительной выручки к контрольной группе.",
        "metric": "Показатель", "value": "Этот месяц", "previous": "Прошлый месяц",
        "change": "Изменение", "collaborations": "Активные коллаборации",
        "customers_sent": "Клиентов отправлено партнёрам",
        "customers_received": "Клиентов получено", "new_customers": "Привлечено клиентов",
        "rewards_earned": "Вознаграждений заработано", "rewards_paid": "Вознаграждений выплачено",
        "cashback_accrued": "Баллов начислено", "cashback_spent": "Баллов списано",
        "offer": "Предложение", "role": "Роль", "partner": "Партнёр", "exposed": "Показано",
        "redeemed": "Использовано", "conversion": "Конверсия", "conv_change": "К прошлому месяцу",
        "partners_reading": "Через партнёров привлечено {new} клиентов ({change} к прошлому "
        "месяцу), активных коллабораций: {collab}.",
        "direction": "Направление", "in": "пришли от", "out": "ушли к",
        "flows_reading": "{inn} клиентов пришли от партнёров, {out} ушли от вас к партнёрам; "
        "самый большой поток — с «{top}».",
        "probability": "прогноз вероятности", "observed": "доля вернувшихся",
        "distribution": "Распределение", "calibration": "Калибровка", "decile": "дециль",
        "lift_title": "Прирост по децилям",
        "score_reading": "Медианная вероятность визита {median}; клиенты верхнего дециля "
        "возвращаются в {lift} раза чаще среднего (модель {version}, ROC-AUC {auc}).",
        "score_reading_short": "Медианная вероятность визита {median} по {n} клиентам; "
        "исходы прогноза ещё не известны (модель {version}, ROC-AUC на отложенной выборке "
        "{auc}).",
        "decile_col": "Дециль", "mean_p": "Средняя вероятность", "observed_col": "Вернулись",
        "held_out": "Проверка модели и базовых методов на отложенной выборке",
        "scorer": "Метод", "top_decile": "Прирост в верхнем дециле",
    },
}  # fmt: skip

SECTION_IDS = ("grid", "segments", "trend", "migration", "campaigns", "partners", "flows",
               "score")  # fmt: skip


def build(
    business: dict[str, Any],
    frames: dict[str, pd.DataFrame],
    segments: pd.DataFrame,
    lang: str,
    month: dt.date,
    model: dict[str, Any] | None,
) -> Report:
    t = T[lang]
    suffix = "_ru" if lang == "ru" else ""
    labels = dict(zip(segments.segment, segments[f"segment_label{suffix}"], strict=True))
    labels["none"] = t["new"]
    order = dict(zip(segments.segment, segments.sort_order, strict=True))
    cur = business.get("currency") or ""

    def f(value: object, kind: str) -> str:
        return fmt(value, kind, lang, cur)

    grid = frames.get("grid", pd.DataFrame())
    asof = str(grid.snapshot.iloc[0])[:10] if len(grid) else "—"
    sections = [
        _grid(t, lang, grid, f),
        _segments(t, lang, grid, segments, suffix, labels, f),
        _trend(t, lang, frames.get("trend", pd.DataFrame()), labels, order, f),
        _migration(t, lang, frames.get("migration", pd.DataFrame()), labels, order, f),
        _campaigns(t, lang, frames.get("campaigns", pd.DataFrame()), f),
        _partners(t, lang, frames.get("dashboard", pd.DataFrame()),
                  frames.get("offers", pd.DataFrame()), month, f),
        _flows(t, lang, frames.get("flows", pd.DataFrame()), business.get("names", {}), f),
        _score(t, lang, frames.get("scores", pd.DataFrame()),
               frames.get("outcomes", pd.DataFrame()), model, f),
    ]  # fmt: skip
    for section in sections:
        if section.empty:
            section.reading = t["no_data"]
    return Report(
        business_id=business["business_id"], business_name=business["name"], lang=lang,
        period=f"{month:%Y-%m}", currency=cur,
        title=t["title"].format(name=business["name"]),
        subtitle=t["subtitle"].format(period=f"{month:%Y-%m}", currency=cur or "—", asof=asof),
        sections=sections,
    )  # fmt: skip


def _cells(grid: pd.DataFrame) -> pd.DataFrame:
    cells = grid.groupby("rfm_cell", as_index=False)[["customers", "revenue"]].sum()
    cells["r"] = cells.rfm_cell.str[1].astype(int)
    cells["f"] = cells.rfm_cell.str[3].astype(int)
    cells["m"] = cells.rfm_cell.str[5].astype(int)
    cells["customer_share"] = cells.customers / max(cells.customers.sum(), 1)
    revenue = float(cells.revenue.sum())
    cells["revenue_share"] = cells.revenue.astype(float) / revenue if revenue else 0.0
    return cells


def _grid(t: dict, lang: str, grid: pd.DataFrame, f) -> Section:
    section = Section("grid", t["grid"], "")
    if grid.empty:
        return section
    cells = _cells(grid)
    big = cells.sort_values(["customers", "rfm_cell"], ascending=[False, True]).iloc[0]
    top = cells[(cells.r == 3) & (cells.m == 3)].revenue_share.sum()
    section.reading = t["grid_reading"].format(
        cell=big.rfm_cell, share=f(big.customer_share, "pct"), rev=f(big.revenue_share, "pct"),
        top=f(top, "pct"),
    )  # fmt: skip
    section.chart = charts.rfm_grid(cells, t, lang)
    section.chart_alt = section.reading
    section.tables.append(Table(
        t["grid"], [t["cell"], t["customers"], t["customer_share"], t["revenue_share"]],
        ["text", "int", "pct", "pct"],
        [[r.rfm_cell, int(r.customers), r.customer_share, r.revenue_share]
         for r in cells.sort_values("rfm_cell", ascending=False).itertuples()],
    ))  # fmt: skip
    return section


def _segments(t, lang: str, grid, segments, suffix, labels, f) -> Section:
    section = Section("segments", t["segments"], "")
    if grid.empty:
        return section
    sizes = grid.groupby("segment", as_index=False)[["customers", "revenue"]].sum()
    sizes = segments.merge(sizes, on="segment", how="left").fillna({"customers": 0, "revenue": 0})
    total = max(int(sizes.customers.sum()), 1)
    revenue = float(sizes.revenue.sum()) or 1.0
    sizes["share"] = sizes.customers / total
    big = sizes.sort_values("customers", ascending=False).iloc[0]
    risk = int(sizes[sizes.segment.isin(SLIPPING)].customers.sum())
    section.reading = t["segments_reading"].format(
        seg=labels[big.segment], share=f(big.share, "pct"), risk=f(risk, "int")
    )
    names = [labels[s] for s in sizes.segment]
    section.chart = charts.bars(names, sizes.customers.tolist(), t["customers"], lang,
                                [s in SLIPPING for s in sizes.segment])  # fmt: skip
    section.chart_alt = section.reading
    section.tables.append(Table(
        t["segments"],
        [t["segment"], t["customers"], t["customer_share"], t["revenue"], t["revenue_share"],
         t["action"]],
        ["text", "int", "pct", "money", "pct", "text"],
        [[labels[r.segment], int(r.customers), r.share, float(r.revenue),
          float(r.revenue) / revenue, getattr(r, f"recommended_action{suffix}")]
         for r in sizes.itertuples()],
    ))  # fmt: skip
    return section


def _trend(t, lang: str, trend, labels, order, f) -> Section:
    section = Section("trend", t["trend"], "")
    if trend.empty:
        return section
    pivot = trend.pivot_table(index="snapshot_date", columns="segment", values="customers",
                              aggfunc="sum", fill_value=0).sort_index()  # fmt: skip
    pivot = pivot[sorted(pivot.columns, key=lambda s: order.get(s, 99))]
    change = (pivot.iloc[-1] - pivot.iloc[0]).abs().sort_values(ascending=False)
    seg = change.index[0]
    section.reading = t["trend_reading"].format(
        n=len(pivot), seg=labels.get(seg, seg), before=f(pivot[seg].iloc[0], "int"),
        after=f(pivot[seg].iloc[-1], "int"),
    )  # fmt: skip
    shown = pivot.rename(columns=labels)
    shown.index = pd.to_datetime(shown.index)
    section.chart = charts.trend(shown, t["customers"], [labels[s] for s in SLIPPING], lang)
    section.chart_alt = section.reading
    section.tables.append(Table(
        t["trend"], [t["segment"], *[str(d)[:10] for d in pivot.index]],
        ["text", *["int"] * len(pivot.index)],
        [[labels.get(s, s), *[int(v) for v in pivot[s]]] for s in pivot.columns],
    ))  # fmt: skip
    return section


def _migration(t, lang: str, moves, labels, order, f) -> Section:
    section = Section("migration", t["migration"], "")
    if moves.empty:
        return section
    pivot = moves.pivot_table(index="from_segment", columns="to_segment", values="customers",
                              aggfunc="sum", fill_value=0)  # fmt: skip
    pivot = pivot.loc[sorted(pivot.index, key=lambda s: order.get(s, 0 if s == "none" else 99)),
                      sorted(pivot.columns, key=lambda s: order.get(s, 99))]  # fmt: skip
    changed = moves[moves.from_segment != moves.to_segment]
    slip = changed[changed.to_segment.isin(SLIPPING) & ~changed.from_segment.isin(SLIPPING)]
    section.reading = t["migration_reading"].format(
        a=str(moves.from_date.iloc[0])[:10], b=str(moves.to_date.iloc[0])[:10],
        moved=f(int(changed.customers.sum()), "int"), slip=f(int(slip.customers.sum()), "int"),
    )  # fmt: skip
    shown = pivot.rename(index=labels, columns=labels)
    section.chart = charts.matrix(shown, t["to"], t["from"], [labels[s] for s in SLIPPING], lang)
    section.chart_alt = section.reading
    section.tables.append(Table(
        t["migration"], [f"{t['from']} \\ {t['to']}", *shown.columns],
        ["text", *["int"] * len(shown.columns)],
        [[name, *[int(v) for v in row]] for name, row in shown.iterrows()],
    ))  # fmt: skip
    return section


def _campaigns(t, lang: str, rows, f) -> Section:
    section = Section("campaigns", t["campaigns"], "")
    if rows.empty:
        return section
    section.reading = t["campaigns_reading"].format(
        n=len(rows), sent=f(int(rows.sent.sum()), "int"),
        inc=f(float(rows.incremental_revisits_30d.fillna(0).sum()), "num"),
        money=f(float(rows.incremental_revenue_30d.fillna(0).sum()), "money"),
    )  # fmt: skip
    stages = ["sent", "delivered", "read", "replied", "revisited_7d", "revisited_30d"]
    per_trigger = rows.groupby("trigger")[stages].sum()
    section.chart = charts.funnel([t[s] for s in ("sent", "delivered", "read", "replied",
                                                  "rev7", "rev30")], per_trigger, lang)  # fmt: skip
    section.chart_alt = section.reading
    holdout = rows.holdout_size / (rows.recipients + rows.holdout_size).replace(0, np.nan)
    section.tables.append(Table(
        t["campaigns"],
        [t["trigger"], t["campaign"], t["sent"], t["delivered"], t["read"], t["replied"],
         t["rev7"], t["rev30"], t["holdout"], t["lift"], t["ci"], t["inc_rev"],
         t["inc_money"], t["verdict"]],
        ["text", "text", "int", "int", "int", "int", "int", "int", "pct", "pct", "text",
         "num", "money", "text"],
        [[r.trigger, r.campaign_id, int(r.sent), int(r.delivered), int(r.read),
          int(r.replied), int(r.revisited_7d), int(r.revisited_30d), h, r.lift_30d,
          f"{f(r.lift_ci95_low_30d, 'pct')} … {f(r.lift_ci95_high_30d, 'pct')}",
          r.incremental_revisits_30d, r.incremental_revenue_30d, r.verdict_30d]
         for r, h in zip(rows.itertuples(), holdout, strict=True)],
    ))  # fmt: skip
    return section


DASHBOARD = ("active_collaborations", "new_customers", "customers_sent", "customers_received",
             "rewards_earned", "rewards_paid", "cashback_accrued", "cashback_spent")  # fmt: skip
DASHBOARD_KEYS = {"active_collaborations": "collaborations"}


def _partners(t, lang: str, dashboard, offers, month, f) -> Section:
    section = Section("partners", t["partners"], "")
    if dashboard.empty and offers.empty:
        return section
    months = pd.to_datetime(dashboard.month).dt.date if len(dashboard) else pd.Series([])
    current = dashboard[months == month]
    previous = dashboard[months == (month - dt.timedelta(days=1)).replace(day=1)]
    rows = []
    for column in DASHBOARD:
        now = float(current[column].sum()) if len(current) else 0.0
        before = float(previous[column].sum()) if len(previous) else None
        change = (now - before) / before if before else None
        kind = "money" if column.startswith(("rewards", "cashback")) else "int"
        rows.append([t[DASHBOARD_KEYS.get(column, column)], now, before, change, kind])
    new, collab = rows[1], rows[0]
    section.reading = t["partners_reading"].format(
        new=f(new[1], "int"), change=f(new[3], "pct"), collab=f(collab[1], "int")
    )
    if len(dashboard):
        labels = [f"{m:%Y-%m}" for m in months]
        section.chart = charts.monthly(labels, {
            t["new_customers"]: dashboard.new_customers.astype(float).tolist(),
            t["cashback_accrued"]: dashboard.cashback_accrued.astype(float).tolist(),
            t["cashback_spent"]: dashboard.cashback_spent.astype(float).tolist(),
        }, lang)  # fmt: skip
        section.chart_alt = section.reading
    section.tables.append(Table(
        t["partners"], [t["metric"], t["value"], t["previous"], t["change"]],
        ["text", "num", "num", "pct"], [r[:4] for r in rows],
    ))  # fmt: skip
    if len(offers):
        section.tables.append(Table(
            t["offer"], [t["offer"], t["role"], t["partner"], t["exposed"], t["redeemed"],
                         t["new_customers"], t["conversion"], t["conv_change"]],
            ["text", "text", "text", "int", "int", "int", "pct", "pct"],
            [[r.offer_id, r.role, r.partner_id, int(r.exposed), int(r.redeemed),
              int(r.new_customers), r.conversion_rate,
              None if pd.isna(r.conversion_rate_change_pct) else r.conversion_rate_change_pct
              / 100] for r in offers.itertuples()],
        ))  # fmt: skip
    return section


FLOW_ARROWS = {"in": "←", "out": "→"}
FLOW_COLOURS = {"in": BLUE, "out": ORANGE}


def _flows(t, lang: str, flows, names, f) -> Section:
    section = Section("flows", t["flows"], "")
    if flows.empty:
        return section
    flows = flows.assign(partner=flows.partner_id.map(lambda b: names.get(b, b)))
    by_partner = flows.groupby("partner").customers.sum().sort_values(ascending=False)
    section.reading = t["flows_reading"].format(
        inn=f(int(flows[flows.direction == "in"].customers.sum()), "int"),
        out=f(int(flows[flows.direction == "out"].customers.sum()), "int"),
        top=by_partner.index[0],
    )
    shown = flows.sort_values("customers", ascending=False).head(15)
    # An arrow and a colour for the direction, spelled out once in the legend: shorter
    # labels than "came from …" on every bar (the chart's layout measures each letter).
    section.chart = charts.bars(
        [f"{FLOW_ARROWS[d]} {p}" for d, p in zip(shown.direction, shown.partner, strict=True)],
        shown.customers.astype(float).tolist(), t["customers"], lang,
        colours=[FLOW_COLOURS[d] for d in shown.direction],
        legend=[Key(f"{FLOW_ARROWS[d]} {t[d]}", FLOW_COLOURS[d]) for d in ("in", "out")],
    )  # fmt: skip
    section.chart_alt = section.reading
    section.tables.append(Table(
        t["flows"], [t["direction"], t["partner"], t["customers"]], ["text", "text", "int"],
        [[t[r.direction], r.partner, int(r.customers)]
         for r in flows.sort_values("customers", ascending=False).itertuples()],
    ))  # fmt: skip
    return section


def _score(t, lang: str, scores, outcomes, model, f) -> Section:
    section = Section("score", t["score"], "")
    if scores.empty:
        return section
    p = scores.p_revisit.to_numpy(dtype=float)
    version = (model or {}).get("version", "—")
    auc = ((model or {}).get("metrics") or {}).get("model", {}).get("roc_auc")
    auc_text = fmt(auc, "num", "en") if auc is not None else "—"
    if len(outcomes):
        y = outcomes.revisited.to_numpy(dtype=float)
        overall = y.mean() or 1.0
        by_decile = (
            outcomes.assign(y=y)
            .groupby("decile")
            .agg(p=("p_revisit", "mean"), y=("y", "mean"), n=("y", "size"))
        )
        top = by_decile.y.iloc[0] / overall if len(by_decile) else float("nan")
        section.reading = t["score_reading"].format(
            median=f(float(np.median(p)), "pct"), lift=f(top, "num"), version=version,
            auc=auc_text)  # fmt: skip
        section.tables.append(Table(
            t["lift_title"], [t["decile_col"], t["customers"], t["mean_p"], t["observed_col"],
                              t["lift"]],
            ["int", "int", "pct", "pct", "num"],
            [[int(d), int(r.n), r.p, r.y, r.y / overall] for d, r in by_decile.iterrows()],
        ))  # fmt: skip
    else:
        section.reading = t["score_reading_short"].format(
            median=f(float(np.median(p)), "pct"), n=f(len(p), "int"), version=version,
            auc=auc_text)  # fmt: skip
    metrics = (model or {}).get("metrics") or {}
    if metrics:
        section.tables.append(Table(
            t["held_out"], [t["scorer"], "ROC-AUC", "Brier", "ECE", t["top_decile"]],
            ["text", "metric", "metric", "metric", "num"],
            [[name, m.get("roc_auc"), m.get("brier"), m.get("ece"), m.get("lift_top_decile")]
             for name, m in metrics.items()],
        ))  # fmt: skip
    section.chart = charts.score(p, outcomes if len(outcomes) else None, t, lang)
    section.chart_alt = section.reading
    return section
