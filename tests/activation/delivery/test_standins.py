"""The stand-ins' own contract: provider answers, auth, recording, routing to the admin app."""

from __future__ import annotations

import httpx

from simulation.providers import TOKENS, StandinCluster


def test_provider_answers_follow_their_contracts_and_are_recorded(
    standins: StandinCluster,
) -> None:
    wa = standins.urls["whatsapp"]
    body = {"messaging_product": "whatsapp", "type": "template", "to": "+79160000001",
            "template": {"name": "t", "language": {"code": "ru"}},
            "biz_opaque_callback_data": "k1"}  # fmt: skip
    auth = {"Authorization": f"Bearer {TOKENS['whatsapp']}"}
    ok = httpx.post(f"{wa}/v21.0/123/messages", json=body, headers=auth)
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/json"
    assert ok.json()["messages"][0]["id"].startswith("wamid.")
    forged = httpx.post(f"{wa}/v21.0/123/messages", json=body, headers={"Authorization": "x"})
    assert (forged.status_code, forged.json()["error"]["code"]) == (401, 190)
    not_json = httpx.post(f"{wa}/v21.0/123/messages", content=b"{", headers=auth)
    assert (not_json.status_code, not_json.json()["error"]["code"]) == (400, 100)
    assert standins.admin("whatsapp").effects() == {"k1": 1}
    assert [r["status"] for r in standins.admin("whatsapp").requests()] == [200]

    tg = standins.urls["telegram"]
    wrong_token = httpx.post(f"{tg}/botnope/sendMessage", json={"chat_id": 1, "text": "x"})
    assert wrong_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}

    sms = standins.urls["sms"]
    sms_auth = {"Authorization": f"Bearer {TOKENS['sms']}"}
    message = {"to": "+79160000001", "text": "hi", "client_ref": "k2"}
    first = httpx.post(f"{sms}/v1/messages", json=message, headers=sms_auth)
    again = httpx.post(f"{sms}/v1/messages", json=message, headers=sms_auth)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = httpx.post(f"{sms}/v1/messages", json={**message, "text": "other"}, headers=sms_auth)
    assert (other.status_code, other.json()["error"]["code"]) == (422, "idempotency_key_reused")
    assert standins.admin("sms").effects() == {"k2": 1}


def test_other_methods_and_paths_go_to_the_admin_app(standins: StandinCluster) -> None:
    wa = standins.urls["whatsapp"]
    assert httpx.get(f"{wa}/v21.0/123/messages").status_code == 404
    assert httpx.post(f"{wa}/v21.0/messages").status_code == 404
    assert httpx.get(f"{wa}/_admin/effects").json() == {}
    ledger = standins.urls["ledger"]
    assert httpx.get(f"{ledger}/v1/accruals").json() == []
