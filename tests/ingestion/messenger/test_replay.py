"""`replay` posts recorded requests (the synthetic generator's format) to a live receiver."""

from __future__ import annotations

import json
from pathlib import Path

from ingestion.messenger.signing import signed_headers
from ingestion.messenger.spool import SpoolRecord, read_segment
from simulation.webhook_replay import replay
from tests.ingestion.messenger.conftest import SECRETS, RunningReceiver, body_bytes, sms_report


def test_replay_posts_every_line_in_order(receiver: RunningReceiver, tmp_path: Path) -> None:
    requests_file = tmp_path / "sms.jsonl"
    bodies = [body_bytes(sms_report(f"dlr-{i}", message_id=f"m-{i}")) for i in range(5)]
    lines = [
        {
            "method": "POST",
            "path": "/webhooks/sms",
            "headers": signed_headers("sms", SECRETS["sms_webhook_secret"], body),
            "body": body.decode(),
        }
        for body in bodies
    ]
    lines.append({**lines[0], "headers": {"X-Signature": "sha256=" + "0" * 64}})  # forged
    requests_file.write_text("".join(json.dumps(line) + "\n" for line in lines))

    result = replay(requests_file, receiver.base_url)

    assert result.sent == 6
    assert result.accepted == 5
    assert dict(result.statuses) == {200: 5, 403: 1}
    (segment,) = receiver.config.spool_root.glob("*.open.jsonl")
    spooled = [r.body for r in read_segment(segment) if isinstance(r, SpoolRecord)]
    assert spooled == bodies
