"""The deployment files: docker-compose.yml, the shared Dockerfile, Prometheus, Grafana.

No container engine is needed. The files are parsed and checked against each other and
against the metric names the services expose; promtool and `docker compose config` run
when they are installed (and the tests that need them skip with the reason otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from salesops_metrics.domain.kpis import KPIS, KpiDefinition
from tests.deploy import grafana

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
GATEWAY_CONFIG = DEPLOY / "gateway" / "nginx.conf"
INIT_SQL = DEPLOY / "postgres" / "init" / "01-databases.sql"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "tests" / "alerts_test.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARDS = grafana.dashboard_paths()

SERVICES = {"ingest": 8001, "routing": 8002, "metrics": 8003, "forecast": 8004}
INFRA = ("postgres", "kafka", "gateway", "prometheus", "grafana")
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "SALESOPS_API_TOKEN", "GRAFANA_ADMIN_PASSWORD")
DATABASES = tuple(f"salesops_{name}" for name in SERVICES)

# The metric families the services expose (counters with their _total suffix).
_PER_SERVICE = (
    "http_requests_total",
    "http_request_duration_seconds",
    "outbox_backlog_events",
    "outbox_published_total",
    "outbox_publish_latency_seconds",
    "consumer_events_total",
    "consumer_processing_seconds",
    "consumer_last_applied_event_timestamp_seconds",
    "pipeline_lag_seconds",
    "dlq_events_total",
)
_HISTOGRAMS = (
    "http_request_duration_seconds",
    "outbox_publish_latency_seconds",
    "consumer_processing_seconds",
    "pipeline_lag_seconds",
)
_SERVICE_SPECIFIC = (
    "salesops_ingest_events_published_total",
    "salesops_ingest_changes_total",
    "salesops_ingest_data_quality_ratio",
    "salesops_ingest_deliveries_pending",
    "salesops_routing_assignments_total",
    "salesops_routing_sla_breaches_total",
    "salesops_metrics_events_total",
    "salesops_forecast_runs_total",
    "salesops_forecast_company_point_amount",
)
# Which grouping labels a KPI gauge's series may carry (docs/metrics.md): its company series
# has none of them.
GROUPING_LABELS = ("territory", "team", "source", "segment", "tool", "rep")


def kpi_families() -> dict[str, KpiDefinition]:
    """salesops_metrics_<kpi>_<unit> for each gauge, salesops_metrics_<kpi>_total for each
    counter, from the KPI catalogue."""
    families = {}
    for kpi in KPIS.values():
        families[f"salesops_metrics_{kpi.name}_{'total' if kpi.counter else kpi.unit}"] = kpi
    return families


def _known_series() -> frozenset[str]:
    names = set(_SERVICE_SPECIFIC) | set(kpi_families()) | {"up"}
    for svc in SERVICES:
        for family in _PER_SERVICE:
            name = f"salesops_{svc}_{family}"
            names.add(name)
            if family in _HISTOGRAMS:
                names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return frozenset(names)


KNOWN_SERIES = _known_series()

pytestmark = pytest.mark.unit


# ------------------------------------------------------------------------------ helpers


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE_FILE)
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs: dict[str, dict[str, Any]] = compose["services"]
    return svcs


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "no FROM in the Dockerfile"
    return instructions[starts[-1] :]


def healthcheck_argv() -> list[str]:
    (args,) = [a for kw, a in final_stage(dockerfile_instructions()) if kw == "HEALTHCHECK"]
    _, _, exec_form = args.partition(" CMD ")
    argv = json.loads(exec_form)
    assert isinstance(argv, list)
    return [str(a) for a in argv]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_NAME_MATCHER = re.compile(r'__name__\s*(=~|=)\s*"((?:[^"\\]|\\.)*)"')
_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w$.:])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_KEYWORDS = frozenset(
    "by without on ignoring group_left group_right bool and or unless offset inf nan".split()
)


def metric_names(expr: str) -> tuple[set[str], set[tuple[str, str]]]:
    """The metric names an expression selects: bare names, and __name__ matchers
    as (operator, value) pairs. Grafana variables ($__rate_interval...) are ignored."""
    matchers = {(op, value) for op, value in _NAME_MATCHER.findall(expr)}
    text = re.sub(r"\$\{?\w+\}?", " ", expr)
    text = _STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+\w+", " ", text)
    text = re.sub(r"\b\d+(\.\d+)?([eE][+-]?\d+)?\b", " ", text)
    names = {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}
    return names, matchers


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every query of every dashboard panel, nested rows included."""
    return [
        (f"{q.dashboard}: {q.panel}", q.expr)
        for path in DASHBOARDS
        for q in grafana.queries(grafana.load(path), path.name)
    ]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def check_metric_names(where: str, expr: str) -> None:
    names, matchers = metric_names(expr)
    assert names or matchers, f"{where}: no metric in {expr!r}"
    for name in names:
        assert name == "up" or name.startswith("salesops_"), f"{where}: {name}"
        assert name in KNOWN_SERIES, f"{where}: {name} is not a metric the services expose"
    for op, value in matchers:
        assert value.startswith("salesops_"), f"{where}: __name__{op}{value!r}"
        if op == "=":
            assert value in KNOWN_SERIES, f"{where}: {value}"
        else:
            pattern = re.compile(value)
            matched = {s for s in KNOWN_SERIES if pattern.fullmatch(s)}
            assert matched, f"{where}: __name__=~{value!r} matches no known metric"
            assert all(s.startswith("salesops_") for s in matched), f"{where}: {value!r}"


# ------------------------------------------------------------------------------ compose


def test_compose_names_every_service(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= set(SERVICES) | set(INFRA)


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_is_built_from_the_shared_dockerfile_and_serves_itself(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    svc = services[name]
    build = svc["build"]
    assert (ROOT / build["context"]).resolve() == ROOT
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert build["args"]["SERVICE"] == name
    assert svc["command"] == ["salesops", "serve", name]
    assert "image" not in svc


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_waits_for_healthy_postgres_and_kafka(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    depends = services[name]["depends_on"]
    for dep in ("postgres", "kafka"):
        assert depends[dep]["condition"] == "service_healthy"
    for dep in ("postgres", "kafka"):
        assert "healthcheck" in services[dep]


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_can_scale(services: dict[str, dict[str, Any]], name: str) -> None:
    """`docker compose up --scale routing=3`: copies of a service may not share a host port
    (the gateway is the way in) nor a container or host name."""
    svc = services[name]
    assert "container_name" not in svc
    assert "hostname" not in svc
    assert "ports" not in svc, f"{name} publishes a host port: reach it through the gateway"
    assert "network_mode" not in svc
    for volume in svc.get("volumes", []):
        assert str(volume).endswith(":ro"), f"{name}: copies would share {volume} read-write"


def test_no_container_is_named(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert "container_name" not in svc, name


def gateway_routes() -> dict[int, tuple[str, int]]:
    """listen port -> (service name, port) of each server block of the gateway's nginx.conf."""
    text = re.sub(r"#[^\n]*", "", GATEWAY_CONFIG.read_text(encoding="utf-8"))
    routes = {}
    for block in re.split(r"\bserver\s*\{", text)[1:]:
        (listen,) = re.findall(r"\blisten\s+(\d+)\s*;", block)
        (service,) = re.findall(r"\bset\s+\$service\s+(\w+)\s*;", block)
        (target,) = re.findall(r"\bproxy_pass\s+http://\$service:(\d+)\s*;", block)
        routes[int(listen)] = (service, int(target))
    return routes


def test_the_gateway_publishes_each_service_on_its_port(
    services: dict[str, dict[str, Any]],
) -> None:
    gateway = services["gateway"]
    assert "./deploy/gateway/nginx.conf:/etc/nginx/nginx.conf:ro" in gateway["volumes"]
    assert {p: (name, p) for name, p in SERVICES.items()} == gateway_routes()
    published = {tuple(entry.split(":")) for entry in gateway["ports"]}
    assert published == {(str(p), str(p)) for p in SERVICES.values()}
    for name in SERVICES:
        assert gateway["depends_on"][name]["condition"] == "service_started"


def test_the_gateway_finds_every_copy_through_docker_dns() -> None:
    """A variable in proxy_pass makes nginx resolve the name at request time (again every
    `valid`), through the resolver named: a copy added by --scale gets requests without a
    restart of the gateway. A literal host would be resolved once, at start."""
    text = GATEWAY_CONFIG.read_text(encoding="utf-8")
    assert re.search(r"^\s*resolver 127\.0\.0\.11 valid=\d+s", text, re.MULTILINE)
    assert not re.search(r"proxy_pass\s+http://(?!\$)", text)
    assert not re.search(r"^\s*upstream\b", text, re.MULTILINE)


def test_nginx_accepts_the_gateway_config(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if nginx is None:
        pytest.skip("nginx not installed: apt-get install nginx-light")
    # -t parses the file and opens the temp and pid paths, all under /tmp as in the container.
    result = subprocess.run(
        [nginx, "-t", "-c", str(GATEWAY_CONFIG), "-e", str(tmp_path / "error.log")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_environment(services: dict[str, dict[str, Any]], name: str) -> None:
    env = services[name]["environment"]
    assert env["SALESOPS_HTTP_HOST"] == "0.0.0.0"
    assert str(env[f"SALESOPS_{name.upper()}_PORT"]) == str(SERVICES[name])
    assert env["SALESOPS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    url = env["SALESOPS_DATABASE_URL"]
    # A server URL: each service appends its own database name.
    assert re.fullmatch(r"postgresql://salesops:\$\{POSTGRES_PASSWORD:\?[^}]+\}@postgres:5432", url)
    assert env["SALESOPS_API_TOKEN"].startswith("${SALESOPS_API_TOKEN:?")
    for optional in (
        "SALESOPS_PUBLIC_BASE_URL",
        "SALESOPS_HUBSPOT_CLIENT_SECRET",
        "SALESOPS_SALESFORCE_ORG_IDS",
        "SALESOPS_PIPEDRIVE_USER",
        "SALESOPS_PIPEDRIVE_PASSWORD",
    ):
        assert env[optional] == f"${{{optional}:-}}"


@pytest.mark.parametrize("name", list(SERVICES))
def test_each_service_healthcheck_probes_its_own_readyz(
    services: dict[str, dict[str, Any]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = services[name]["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"], "the slim image has no curl: use python"
    opened: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> None:
        opened.append(url)

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    exec(compile(test[3], f"<{name} healthcheck>", "exec"), {})
    assert opened == [f"http://127.0.0.1:{SERVICES[name]}/readyz"]
    for key in ("interval", "timeout", "retries"):
        assert key in check


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in REQUIRED_SECRETS:
        refs = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert refs, f"{secret} is never used"
        for modifier in refs:
            assert modifier.startswith(":?"), f"${{{secret}{modifier}}}: use :? (no default)"
        bare = re.search(r"\$" + secret + r"\b", text)
        assert not bare, f"bare ${secret}: use ${{{secret}:?...}}"
    # Any other secret-looking variable may be optional, but never with a default value.
    for name, modifier in re.findall(r"\$\{(\w*(?:PASSWORD|SECRET|TOKEN)\w*)([^}]*)\}", text):
        assert modifier.startswith(":?") or modifier == ":-", f"${{{name}{modifier}}}"
    # And no literal secret value in any environment block.
    for svc_name, svc in compose["services"].items():
        env = svc.get("environment") or {}
        assert isinstance(env, dict), f"{svc_name}: use a mapping for environment"
        for key, value in env.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert isinstance(value, str), f"{svc_name}.{key}"
                assert re.fullmatch(r"\$\{\w+:[?-][^}]*\}", value), f"{svc_name}.{key}"


def test_postgres_runs_the_init_script_and_reports_health(
    services: dict[str, dict[str, Any]],
) -> None:
    pg = services["postgres"]
    assert str(pg["image"]).startswith("postgres:16")
    assert "./deploy/postgres/init:/docker-entrypoint-initdb.d:ro" in pg["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert pg["environment"]["POSTGRES_USER"] == "salesops"


def test_the_init_script_creates_one_database_per_service() -> None:
    sql = INIT_SQL.read_text(encoding="utf-8")
    for database in DATABASES:
        assert re.search(rf"'{database}'", sql), database
    assert "CREATE DATABASE" in sql


def test_kafka_is_a_single_kraft_node(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"] == "apache/kafka:3.9.0"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert str(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == "1"
    # CLUSTER_ID: a base64url-encoded UUID (16 bytes, 22 characters).
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"])
    assert "kafka" in " ".join(kafka["healthcheck"]["test"])


def test_grafana_and_prometheus_mount_the_deploy_files(
    services: dict[str, dict[str, Any]],
) -> None:
    prom = services["prometheus"]
    assert any(v.startswith("./deploy/prometheus:/etc/prometheus") for v in prom["volumes"])
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
    mounts = {v.split(":")[0]: v.split(":")[1] for v in grafana["volumes"]}
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "dashboards.yml")
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    # Grafana opens on the sales-ops dashboard, read from the mounted directory.
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    directory, _, name = home.rpartition("/")
    assert directory == mounts["./deploy/grafana/dashboards"], home
    assert name == "sales-ops.json"
    assert (GRAFANA / "dashboards" / name).is_file()


# ---------------------------------------------------------------------------- Dockerfile


def test_dockerfile_installs_the_locked_workspace_with_uv() -> None:
    instructions = dockerfile_instructions()
    froms = [a for kw, a in instructions if kw == "FROM"]
    args = {
        a.split("=", 1)[0]: a.split("=", 1)[1] for kw, a in instructions if kw == "ARG" and "=" in a
    }
    for base in froms:
        image = base.split()[0]
        if image.startswith("${"):
            image = args[image.strip("${}")]
        assert image == "python:3.11-slim", base
    runs = " ".join(a for kw, a in instructions if kw == "RUN")
    assert "pip install uv==0.13.9" in runs
    assert re.search(r"uv sync --frozen --no-dev\b", runs)
    env = " ".join(a for kw, a in final_stage(instructions) if kw == "ENV")
    assert "/app/.venv/bin" in env


def test_dockerfile_copies_every_workspace_member_manifest() -> None:
    """uv sync --frozen needs every member's pyproject.toml: a new member must be added."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copies = [a for kw, a in dockerfile_instructions() if kw == "COPY"]
    for member in root["tool"]["uv"]["workspace"]["members"]:
        assert any(c.startswith(f"{member}/pyproject.toml ") for c in copies), member


def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck() -> None:
    stage = final_stage(dockerfile_instructions())
    users = [a for kw, a in stage if kw == "USER"]
    assert users, "the runtime stage has no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    assert any(kw == "HEALTHCHECK" for kw, _ in stage)
    cmd = [a for kw, a in stage if kw == "CMD"][-1]
    assert "salesops serve" in cmd


def test_dockerignore_keeps_the_context_to_what_the_image_copies() -> None:
    rules = [
        line.strip()
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*", "allow-list: exclude everything, then re-include"
    allowed = {r[1:].rstrip("/") for r in rules if r.startswith("!")}
    for kw, args in dockerfile_instructions():
        if kw != "COPY" or args.startswith("--from"):
            continue
        *sources, _dest = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.split("/")[0] in allowed, f"{source} is not in the build context"


class _Readyz(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        code = self.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def readyz_server() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Readyz)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_the_image_healthcheck_follows_readyz(
    readyz_server: ThreadingHTTPServer, status: int, healthy: bool
) -> None:
    _Readyz.status = status
    argv = healthcheck_argv()
    assert argv[0] == "python"
    env = {
        **os.environ,
        "SALESOPS_SERVICE": "routing",
        "SALESOPS_ROUTING_PORT": str(readyz_server.server_address[1]),
    }
    result = subprocess.run(
        [sys.executable, *argv[1:]], env=env, capture_output=True, timeout=30, check=False
    )
    assert (result.returncode == 0) is healthy, result.stderr.decode()


# ---------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_every_copy_of_every_service(
    services: dict[str, dict[str, Any]],
) -> None:
    config = load_yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    for name, port in SERVICES.items():
        job = jobs[name]
        (sd,) = job["dns_sd_configs"]
        assert sd["names"] == [name]
        assert sd["type"] == "A"
        assert sd["port"] == port
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert name in services
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS_CONFIG.parent / rule_file).is_file(), rule_file


def test_alerts_cover_dlq_lag_backlog_and_down() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    dlq = rules["SalesopsDeadLetterGrowth"]
    assert "dlq_events_total" in dlq["expr"]
    assert "[10m]" in dlq["expr"]
    assert re.search(r"\)\s*>\s*0\s*$", dlq["expr"])
    lag = rules["SalesopsPipelineLagHigh"]
    assert "pipeline_lag_seconds_bucket" in lag["expr"]
    assert "histogram_quantile(0.99" in lag["expr"]
    assert re.search(r">\s*5\s*$", lag["expr"])
    assert lag["for"] == "5m"
    backlog = rules["SalesopsOutboxBacklogHigh"]
    assert "outbox_backlog_events" in backlog["expr"]
    assert re.search(r">\s*1000\s*$", backlog["expr"])
    assert backlog["for"] == "5m"
    down = rules["SalesopsServiceDown"]
    assert re.search(r"\bup\{[^}]*\}\s*==\s*0", down["expr"])
    assert down["for"] == "1m"
    breached = rules["SalesopsLeadResponseSlaBreached"]
    assert "increase(salesops_routing_sla_breaches_total[" in breached["expr"]
    assert re.search(r">\s*0\s*$", breached["expr"])
    within = rules["SalesopsLeadResponseWithinSlaLow"]
    assert 'salesops_metrics_lead_response_within_sla_ratio{territory!=""}' in within["expr"]
    assert re.search(r"<\s*0\.8\s*$", within["expr"])
    for rule in rules.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


def test_alert_exprs_use_only_salesops_metrics_and_up() -> None:
    for rule in alert_rules():
        check_metric_names(rule["alert"], rule["expr"])


def test_the_metric_name_extraction() -> None:
    names, matchers = metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(foo_bucket{job="a"}[5m]))) > 5'
        ' or absent(up{job="x"}) * on (job) group_left bar offset 5m'
        ' + {__name__=~"salesops_(a|b)_x"}[$__rate_interval]'
    )
    assert names == {"foo_bucket", "up", "bar"}
    assert matchers == {("=~", "salesops_(a|b)_x")}


# ------------------------------------------------------------------------------- Grafana


def test_the_datasource_has_the_uid_the_dashboards_use() -> None:
    config = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    (ds,) = config["datasources"]
    assert ds["uid"] == "prometheus"
    assert ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"


def test_both_dashboards_exist() -> None:
    assert {p.name for p in DASHBOARDS} >= {"system.json", "sales-ops.json"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_each_dashboard_is_valid_and_queries_prometheus(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert dashboard["uid"]
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 36
    panels = dashboard["panels"]
    assert panels
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        if panel["type"] == "row":
            continue
        where = f"{path.name}: {panel['title']}"
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}, where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["expr"].strip(), where
            assert target["datasource"]["uid"] == "prometheus", where
        pos = panel["gridPos"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= 24, where


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


def test_dashboard_exprs_use_only_salesops_metrics_and_up() -> None:
    exprs = dashboard_exprs()
    assert exprs
    for where, expr in exprs:
        check_metric_names(where, expr)


def test_the_dashboards_show_what_operators_and_sales_need() -> None:
    joined = {
        path.name: " ".join(e for w, e in dashboard_exprs() if w.startswith(path.name + ":"))
        for path in DASHBOARDS
    }
    for needle in (
        # ingest rate: every path publishes through the outbox (REST, webhooks, imports)
        "salesops_ingest_outbox_published_total",
        "salesops_ingest_changes_total",
        "http_request_duration_seconds_bucket",
        "outbox_backlog_events",
        "outbox_publish_latency_seconds_bucket",
        "pipeline_lag_seconds_bucket",
        "dlq_events_total",
        'outcome="applied"',
    ):
        assert needle in joined["system.json"], needle
    for needle in (
        "salesops_metrics_win_rate_ratio",
        "salesops_metrics_sales_cycle_median_days",
        "salesops_metrics_lead_response_median_minutes",
        "salesops_metrics_lead_response_business_median_minutes",
        "salesops_metrics_lead_response_within_sla_ratio",
        "salesops_metrics_technology_adoption_ratio",
        "salesops_forecast_company_point_amount",
        "salesops_metrics_forecast_accuracy_ratio",
        "salesops_metrics_pipeline_value_amount",
        "salesops_metrics_sla_breach_rate_ratio",
        "salesops_routing_sla_breaches_total",
        "salesops_metrics_duplicate_rate_ratio",
        "salesops_metrics_dead_letters_total",
    ):
        assert needle in joined["sales-ops.json"], needle


_SELECTOR = re.compile(r"(salesops_metrics_\w+)(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def _grouping_of(matchers: dict[str, tuple[str, str]]) -> list[str]:
    """The grouping labels a selector requires to be set (`!=""`, `=~".+"`, `=~"$var"`)."""
    return [
        label
        for label, (op, value) in matchers.items()
        if label in GROUPING_LABELS
        and ((op == "!=" and value == "") or (op == "=~" and value in (".+", f"${label}")))
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_kpi_queries_select_one_grouping(path: Path) -> None:
    """A KPI family holds the company series (no grouping label) and one set per grouping:
    a query over all of them mixes them (max() of the best territory and the company). Each
    gauge selector names the company series (every grouping label empty) or exactly one
    grouping; the forecast WAPE and bias, whose series differ by `scope`, name a scope."""
    families = kpi_families()
    for where, expr in dashboard_exprs():
        if not where.startswith(path.name):
            continue
        for name, selector in _SELECTOR.findall(expr):
            kpi = families.get(name)
            if kpi is None or kpi.counter or not kpi.group_by:
                continue
            matchers = {m[0]: (m[1], m[2]) for m in _MATCHER.findall(selector)}
            if kpi.name in ("forecast_wape", "forecast_bias"):
                assert matchers.get("scope", ("", ""))[0] == "=", f"{where}: {expr}"
                continue
            company = all(matchers.get(lb) == ("=", "") for lb in GROUPING_LABELS)
            grouped = _grouping_of(matchers)
            assert company or len(grouped) == 1, f"{where}: {name} mixes groupings: {expr}"
            if grouped:
                assert re.search(rf"\bby \([^)]*\b{grouped[0]}\b", expr), f"{where}: {expr}"


def test_the_selector_check_tells_company_grouped_and_mixed_apart() -> None:
    company = 'territory="", team="", source="", segment="", tool="", rep=""'
    assert _grouping_of({"territory": ("=~", "$territory")}) == ["territory"]
    assert _grouping_of({"team": ("!=", "")}) == ["team"]
    assert _grouping_of({"stage": ("!=", "")}) == []
    matchers = {m[0]: (m[1], m[2]) for m in _MATCHER.findall("{" + company + "}")}
    assert all(matchers.get(lb) == ("=", "") for lb in GROUPING_LABELS)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_variables_default_to_all_and_come_from_the_kpi_series(path: Path) -> None:
    dashboard = grafana.load(path)
    declared = {v["name"]: v for v in dashboard["templating"]["list"]}
    for var in grafana.variables(dashboard):
        raw = declared[var.name]
        assert raw["datasource"] == grafana.DATASOURCE
        # All means every series of the grouping, never the company one (`.+`, not `.*`).
        assert var.include_all, var
        assert var.multi, var
        assert var.all_value == ".+", var
        assert raw["current"]["value"] in (["$__all"], "$__all"), raw["current"]
        selector, label = var.label_values()
        assert label == var.name in GROUPING_LABELS
        assert f'{label}!=""' in selector.replace(" ", "")
        check_metric_names(f"{path.name}: ${var.name}", selector)
    for query in grafana.queries(dashboard, path.name):
        grafana.as_shown(dashboard, query.expr)  # raises on a variable the board lacks


def test_the_sales_ops_dashboard_filters_by_territory_and_team() -> None:
    dashboard = grafana.load(GRAFANA / "dashboards" / "sales-ops.json")
    assert {v.name for v in grafana.variables(dashboard)} == {"territory", "team"}
    exprs = " ".join(q.expr for q in grafana.queries(dashboard, "sales-ops.json"))
    assert 'territory=~"$territory"' in exprs
    assert 'team=~"$team"' in exprs


# ------------------------------------------------------------------------------ promtool


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed: apt-get install prometheus")
    return path


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_accepts_the_config_and_the_rules() -> None:
    result = run_promtool("check", "config", PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    result = run_promtool("check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_every_dashboard_query(tmp_path: Path) -> None:
    """Grafana's variables replaced as when the dashboard opens, each query is valid PromQL."""
    rules = []
    for i, path in enumerate(DASHBOARDS):
        dashboard = grafana.load(path)
        for j, query in enumerate(grafana.queries(dashboard, path.name)):
            promql = grafana.as_shown(dashboard, query.expr)
            rules.append({"record": f"dashboard_query_{i}_{j}", "expr": promql})
    path = tmp_path / "dashboards.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run_promtool("check", "rules", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_fires_each_alert_on_its_symptom() -> None:
    """The alert unit tests (deploy/prometheus/tests/alerts_test.yml), annotations included."""
    result = run_promtool("test", "rules", ALERT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_unit_tests_cover_every_alert() -> None:
    """Each alert has a case where it fires and one where it stays quiet."""
    tests = load_yaml(ALERT_TESTS)
    assert [(ALERT_TESTS.parent / f).resolve() for f in tests["rule_files"]] == [ALERTS]
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
            for expected in check["exp_alerts"]:
                assert expected["exp_annotations"]["summary"], check
    alerts = {rule["alert"] for rule in alert_rules()}
    assert fired == alerts
    assert quiet == alerts


# ------------------------------------------------------------------------ docker compose


def compose_command() -> list[str]:
    """`docker compose` (the plugin) or `docker-compose` (v2, or v1 from 1.27, which reads the
    Compose Specification; Debian ships 1.29); all parse without an engine."""
    candidates = []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        probe = subprocess.run(
            [*cmd, "version"], capture_output=True, text=True, timeout=60, check=False
        )
        version = re.search(r"version v?(\d+)\.(\d+)", probe.stdout, re.IGNORECASE)
        if probe.returncode == 0 and version and (int(version[1]), int(version[2])) >= (1, 27):
            return cmd
    pytest.skip("docker compose not installed: apt-get install docker-compose")


def compose_is_v2() -> bool:
    cmd = compose_command()
    probe = subprocess.run([*cmd, "version"], capture_output=True, text=True, check=False)
    return re.search(r"version v?1\.", probe.stdout, re.IGNORECASE) is None


def run_compose_config(tmp_path: Path, secrets: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    for name in (*REQUIRED_SECRETS, "DOCKER_HOST"):
        env.pop(name, None)
    env.update(secrets)
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return subprocess.run(
        [
            *compose_command(),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(empty),
            "-f",
            str(COMPOSE_FILE),
            "config",
            *(["--format", "json"] if compose_is_v2() else []),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


DUMMY_SECRETS = {name: f"dummy-{name.lower()}" for name in REQUIRED_SECRETS}


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    result = run_compose_config(tmp_path, DUMMY_SECRETS)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)  # JSON from v2 is YAML too
    svcs = resolved["services"]
    assert set(svcs) >= set(SERVICES) | set(INFRA)
    db_url = svcs["routing"]["environment"]["SALESOPS_DATABASE_URL"]
    assert db_url == "postgresql://salesops:dummy-postgres_password@postgres:5432"
    for name in SERVICES:
        assert not svcs[name].get("ports"), name
    published = set()
    for entry in svcs["gateway"]["ports"]:
        if isinstance(entry, str):  # v1 keeps the short syntax: "8001:8001/tcp"
            host, _, target = entry.partition(":")
            entry = {"published": host, "target": int(target.split("/")[0])}
        published.add((int(entry["published"]), int(entry["target"])))
    assert published == {(port, port) for port in SERVICES.values()}


@pytest.mark.parametrize("missing", REQUIRED_SECRETS)
def test_docker_compose_refuses_to_start_without_a_secret(tmp_path: Path, missing: str) -> None:
    secrets = {k: v for k, v in DUMMY_SECRETS.items() if k != missing}
    result = run_compose_config(tmp_path, secrets)
    assert result.returncode != 0 or not result.stdout.strip()
    assert f"set {missing}" in result.stderr, result.stderr
