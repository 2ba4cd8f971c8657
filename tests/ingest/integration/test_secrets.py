"""Secrets never appear in logs or error bodies.

Ingest runs with known secret values — the API token, the HubSpot client secret and access
token, the Pipedrive password and API token, a password in the database URL — at DEBUG, and
goes through a realistic flow with failures: accepted and refused requests (wrong and near-miss
tokens, bad signatures, bad Basic credentials, invalid bodies), CRM reads and a reconciliation
pull against a CRM API that is down, and a database that cannot be reached. Every line the
process wrote to stdout/stderr and every answer (bodies and headers) is then searched for each
secret (as is, and in the forms it travels in: Basic credentials in base64)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable

import httpx
import orjson
import pytest

from salesops_cli.infra import free_port
from salesops_common.db import wait_for_database
from salesops_ingest.bootstrap import create_app
from tests.ingest.integration.crm_support import hs_event, ingest_settings, sign_v3
from tests.support import Isolation, api_event, eventually, running

pytestmark = pytest.mark.integration


def _secret(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex}"


API_TOKEN = _secret("api")
HUBSPOT_SECRET = _secret("hs-client")
HUBSPOT_TOKEN = _secret("hs-access")
PIPEDRIVE_USER = "pipedrive-hook"
PIPEDRIVE_PASSWORD = _secret("pd-basic")
PIPEDRIVE_TOKEN = _secret("pd-api")
DB_PASSWORD = _secret("db")
SECRETS = [API_TOKEN, HUBSPOT_SECRET, HUBSPOT_TOKEN, PIPEDRIVE_PASSWORD, PIPEDRIVE_TOKEN]
SECRETS += [DB_PASSWORD]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# The forms a secret travels in, each one searched for.
FORMS = [*SECRETS, _basic(PIPEDRIVE_USER, PIPEDRIVE_PASSWORD).split()[1]]


def _leaks(texts: Iterable[str]) -> list[str]:
    """Each secret found, with the text around it."""
    return [
        f"{form}: ...{text[max(0, text.index(form) - 300) : text.index(form) + 100]}..."
        for form in FORMS
        for text in texts
        if form in text
    ]


def _answer_text(resp: httpx.Response) -> str:
    return f"{resp.status_code} {dict(resp.headers)!r} {resp.text}"


async def test_no_secret_in_the_logs_or_answers_of_a_run_with_failures(
    iso: Isolation, capfd: pytest.CaptureFixture[str]
) -> None:
    dead_crm = f"http://127.0.0.1:{free_port()}"  # nothing listens: every CRM call fails
    database_url = iso.database_url.replace("postgres@", f"postgres:{DB_PASSWORD}@", 1)
    assert DB_PASSWORD in database_url
    settings = ingest_settings(
        iso,
        api_token=API_TOKEN,
        database_url=database_url,
        hubspot_client_secret=HUBSPOT_SECRET,
        hubspot_access_token=HUBSPOT_TOKEN,
        hubspot_api_base=dead_crm,
        pipedrive_user=PIPEDRIVE_USER,
        pipedrive_password=PIPEDRIVE_PASSWORD,
        pipedrive_api_token=PIPEDRIVE_TOKEN,
        pipedrive_api_base=dead_crm,
        log_level="DEBUG",
    )
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    answers: list[httpx.Response] = []
    output: list[str] = []

    def captured() -> str:
        out, err = capfd.readouterr()
        output.extend((out, err))
        return "".join(output)

    async with running(create_app(settings)) as ingest:

        async def call(method: str, url: str, **kwargs: object) -> httpx.Response:
            resp = await ingest.request(method, url, **kwargs)  # type: ignore[arg-type]
            answers.append(resp)
            return resp

        # Accepted and refused REST calls.
        lead = api_event("lead.created", "S1", {"email": "ann@acme.example"})
        assert (await call("POST", "/v1/events", json=lead, headers=auth)).status_code == 202
        for wrong in (API_TOKEN + "x", API_TOKEN[:-1], API_TOKEN.upper(), ""):
            resp = await call("POST", "/v1/events", json=lead, headers={"Authorization": wrong})
            assert resp.status_code == 401, resp.text
        resp = await call("POST", "/v1/events", json={"type": "lead.nope"}, headers=auth)
        assert resp.status_code == 422, resp.text
        # HubSpot: a thin creation event makes ingest read the contact from the (down) API; a
        # bad signature is refused.
        body = orjson.dumps([hs_event("contact.creation", 901)])
        signed = sign_v3(body, secret=HUBSPOT_SECRET)
        resp = await call("POST", "/webhooks/hubspot", content=body, headers=signed)
        assert resp.status_code == 204, resp.text
        forged = sign_v3(body, secret=HUBSPOT_SECRET + "x")
        resp = await call("POST", "/webhooks/hubspot", content=body, headers=forged)
        assert resp.status_code == 401, resp.text
        # Pipedrive: wrong and right Basic credentials (the body is not a valid event).
        for password in (PIPEDRIVE_PASSWORD[:-1], PIPEDRIVE_PASSWORD):
            headers = {"Authorization": _basic(PIPEDRIVE_USER, password)}
            resp = await call("POST", "/webhooks/pipedrive", content=b"{}", headers=headers)
            assert resp.status_code in (400, 401), resp.text
        # A reconciliation pull from both (down) CRM APIs, and the read of the contact failing.
        pull = {"sources": ["hubspot", "pipedrive"]}
        resp = await call("POST", "/v1/syncs", json=pull, headers=auth)
        assert resp.status_code == 200, resp.text

        async def crm_failures_logged() -> bool:
            text = captured()
            return "HubSpot GET /crm/v3/objects/contacts/901 failed" in text

        await eventually(crm_failures_logged, within=60, interval=0.2)
        for path in ("/v1/syncs", "/v1/writebacks", "/v1/deliveries/status", "/readyz"):
            await call("GET", path, headers=auth)

    # A database that cannot be reached, with the password in its URL.
    unreachable = f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:{free_port()}"
    with pytest.raises(OSError, match="127.0.0.1") as refused:
        await wait_for_database(unreachable, "ingest_secrets", attempts=2)
    assert "database not reachable yet" in captured()

    texts = [*output, *(_answer_text(r) for r in answers), str(refused.value)]
    assert not _leaks(texts), f"secrets leaked: {_leaks(texts)}"
    # The search finds what it looks for.
    assert len(_leaks([database_url])) == 1
