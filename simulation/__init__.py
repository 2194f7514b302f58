"""Simulators and stand-ins: everything that pretends to be the outside world.

Nothing in the production packages (`warehouse`, `ingestion`, `ml`, `activation`,
`orchestration`) imports this package; only the demo (`revisit demo`), the tests and the
benchmarks do.

- `simulation.ecosystem` — the synthetic ecosystem of businesses, customers, visits,
  messages and partner offers, written in the native forms of `ingestion/SOURCES.md`,
  with its ground truth.
- `simulation.crm_api` — a CRM REST API serving generated records (cursor pagination,
  scripted faults).
- `simulation.providers` — WhatsApp Cloud API, Telegram Bot API, SMS gateway and loyalty
  ledger stand-ins on 127.0.0.1 that record every effect.
- `simulation.visit_world` — a small visit world with exact revisit probabilities for
  the ML tests and benchmark.
"""
