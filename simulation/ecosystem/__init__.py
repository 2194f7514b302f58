"""Synthetic ecosystem generator: CRM, messenger, partner data with known ground truth.

`generate(out_dir, customers=..., seed=...)` writes every source in the native forms of
ingestion/SOURCES.md plus `truth/` (never read by ingestion). See `generator.generate`.
"""

from simulation.ecosystem.generator import DEFAULT_AS_OF, SCALES, WebhookSecrets, generate

__all__ = ["DEFAULT_AS_OF", "SCALES", "WebhookSecrets", "generate"]
