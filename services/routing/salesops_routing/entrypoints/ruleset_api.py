"""Rules as code: the whole territory model exported and imported as YAML or JSON,
validated before any change, versioned; single territories edited through the same path."""

from __future__ import annotations

import re
from typing import Any

import orjson
import yaml
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ValidationError

from salesops_common.http import ApiError, JsonResponse, read_body
from salesops_routing.adapters import models
from salesops_routing.domain.ruleset import Ruleset, Territory
from salesops_routing.service_layer import rulesets
from salesops_routing.service_layer.context import RoutingContext

RULESET_LIMIT = 32 * 1024 * 1024  # 50,000 rules in YAML is a few MiB
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class PublishedView(BaseModel):
    version: int
    changed: bool  # false: the same model was already in force; no new version
    accounts_moved: int
    findings: list[dict[str, Any]]


class Validated(BaseModel):
    valid: bool
    findings: list[dict[str, Any]]


class VersionView(BaseModel):
    version: int
    digest: str
    comment: str | None
    created_at: Any


class _Yaml12Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``NO`` (Norway), ``ON`` or ``Y`` as booleans: in a ruleset they are
    country and region codes. Only ``true``/``false`` are booleans here, as in YAML 1.2."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def parse_ruleset(raw: bytes, content_type: str) -> Ruleset:
    """YAML or JSON by Content-Type (JSON when unsaid); 400 if unreadable, 422 if invalid."""
    try:
        if content_type.split(";")[0].strip().lower() in YAML_TYPES:
            data = load_yaml(raw.decode("utf-8"))
        else:
            data = orjson.loads(raw)
    except (yaml.YAMLError, orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the body is not readable YAML or JSON: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("ruleset"), dict):
        data = data["ruleset"]  # an export (version + ruleset) imports as is
    try:
        return Ruleset.model_validate(data)
    except ValidationError as exc:
        details = [
            {"loc": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()
        ]
        raise ApiError(422, "the ruleset is invalid", details=details) from None


def render(body: dict[str, Any], *, yaml_wanted: bool) -> Response:
    if yaml_wanted:
        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        return Response(text, media_type="application/yaml")
    return JsonResponse(body)


def _wants_yaml(request: Request, format: str | None) -> bool:
    if format is not None:
        return format == "yaml"
    accept = request.headers.get("accept", "")
    return any(t in accept for t in YAML_TYPES)


_RULESET_EXPORT: dict[str, Any] = {
    "description": "The territory model: ``{version, ruleset}``, as JSON or YAML.",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "object"}},
    },
}


def build_ruleset_router(ctx: RoutingContext) -> APIRouter:
    router = APIRouter(
        prefix="/v1/routing", tags=["ruleset"], dependencies=[Depends(ctx.require_token)]
    )

    @router.get("/ruleset", response_model=None, responses={200: _RULESET_EXPORT})
    async def export_ruleset(
        request: Request,
        version: int | None = Query(None, ge=0),  # noqa: B008
        format: str | None = Query(None, pattern="^(yaml|json)$"),  # noqa: B008
    ) -> Response:
        """The territory model in force (or an earlier ``version``), as JSON, or YAML with
        ``Accept: application/yaml`` or ``?format=yaml``. Version 0 is the implicit model
        before any import: every rep in one territory, round robin, exported with the reps
        named so that importing it as it is changes nothing."""
        async with ctx.uow() as session:
            wanted = version if version is not None else await models.current_version(session)
            model = await rulesets.load(session, wanted)
            ruleset = await rulesets.importable(session, model)
        body = {"version": model.version, "ruleset": rulesets.export(ruleset)}
        return render(body, yaml_wanted=_wants_yaml(request, format))

    @router.put("/ruleset")
    async def import_ruleset(request: Request, comment: str | None = None) -> PublishedView:
        """Replace the whole model (YAML or JSON). It is validated first: errors refuse the
        change with 422 and the findings; warnings are returned with the new version, which
        is published as ``ruleset.published`` and re-places every account."""
        raw = await read_body(request, limit=RULESET_LIMIT)
        ruleset = parse_ruleset(raw, request.headers.get("content-type", ""))
        return await _publish(ctx, ruleset, comment)

    @router.post("/ruleset/validate")
    async def validate_ruleset(request: Request) -> Validated:
        """The findings a PUT of this model would give, changing nothing."""
        raw = await read_body(request, limit=RULESET_LIMIT)
        ruleset = parse_ruleset(raw, request.headers.get("content-type", ""))
        async with ctx.uow() as session:
            findings = await rulesets.check(session, ruleset)
        return Validated(
            valid=not any(f.severity == "error" for f in findings),
            findings=[f.as_json() for f in findings],
        )

    @router.get("/ruleset/versions")
    async def ruleset_versions(limit: int = Query(50, ge=1, le=1000)) -> list[VersionView]:  # noqa: B008
        async with ctx.uow() as session:
            rows = await models.list_versions(session, limit=limit)
        return [VersionView.model_validate(r) for r in rows]

    _territory_routes(router, ctx)
    return router


def _territory_routes(router: APIRouter, ctx: RoutingContext) -> None:
    @router.get("/territories")
    async def list_territories() -> list[Territory]:
        async with ctx.uow() as session:
            model = await rulesets.MODELS.current(session)
        return list(model.ruleset.territories)

    @router.get("/territories/{territory_id}")
    async def get_territory(territory_id: str) -> Territory:
        async with ctx.uow() as session:
            model = await rulesets.MODELS.current(session)
        found = model.ruleset.territory(territory_id)
        if found is None:
            raise ApiError(404, f"no territory {territory_id!r} in version {model.version}")
        return found

    @router.put("/territories/{territory_id}")
    async def put_territory(territory_id: str, body: Territory) -> PublishedView:
        """Add or replace one territory (its rules and members): a new ruleset version."""
        if body.id != territory_id:
            raise ApiError(422, "the body's id differs from the path's")
        async with ctx.uow() as session:
            model = await rulesets.MODELS.current(session)
        current = model.ruleset if model.version else Ruleset()
        others = [t for t in current.territories if t.id != territory_id]
        changed = current.model_copy(update={"territories": [*others, body]})
        return await _publish(ctx, changed, f"territory {territory_id} saved")

    @router.delete("/territories/{territory_id}")
    async def delete_territory(territory_id: str) -> PublishedView:
        async with ctx.uow() as session:
            model = await rulesets.MODELS.current(session)
        if model.version == 0 or model.ruleset.territory(territory_id) is None:
            raise ApiError(404, f"no territory {territory_id!r}")
        others = [t for t in model.ruleset.territories if t.id != territory_id]
        changed = model.ruleset.model_copy(update={"territories": others})
        return await _publish(ctx, changed, f"territory {territory_id} deleted")


async def _publish(ctx: RoutingContext, ruleset: Ruleset, comment: str | None) -> PublishedView:
    # Revalidate through the model so that a copy edited in code obeys the same rules.
    ruleset = Ruleset.model_validate(ruleset.model_dump())
    async with ctx.transaction() as handler_ctx:
        published = await rulesets.publish(handler_ctx, ruleset, comment=comment)
    return PublishedView(
        version=published.version,
        changed=published.changed,
        accounts_moved=published.accounts_moved,
        findings=[f.as_json() for f in published.findings],
    )
