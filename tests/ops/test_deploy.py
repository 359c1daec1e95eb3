"""deploy/ cannot rot: the compose file, the HAProxy config and the Kubernetes manifests parse, the
manifests are valid Kubernetes objects (each field where its kind's schema puts it), their probes
point at routes the app has, and every CHILDINDEX_ variable they set is a setting."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml  # type: ignore[import-untyped]

from childindex.app import create_app
from childindex.settings import Settings
from tests.conftest import IN_CI

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _manifests() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in _docs(p)]


def _routes() -> set[str]:
    app = create_app(Settings(database_url="sqlite://", indexer_interval_seconds=0))
    return {getattr(r, "path", "") for r in app.routes}


def _pods(kind: str) -> list[dict[str, Any]]:
    """The pod specs of the manifests of this kind (a Deployment's, a Job's, a CronJob's)."""
    found = []
    for doc in _manifests():
        if doc["kind"] != kind:
            continue
        spec = doc["spec"]
        spec = spec["jobTemplate"]["spec"] if kind == "CronJob" else spec
        found.append(spec["template"]["spec"])
    return found


def _containers(kind: str) -> list[dict[str, Any]]:
    return [c for pod in _pods(kind) for c in pod["containers"]]


def test_the_deployment_runs_two_replicas_probed_on_routes_the_app_has() -> None:
    routes = _routes()
    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    (app,) = deployment["spec"]["template"]["spec"]["containers"]
    assert app["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert app["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert app[probe]["httpGet"]["path"] in routes
    kinds = {d["kind"] for d in _manifests()}
    assert {"Deployment", "Service", "Ingress", "Job", "Secret", "ConfigMap", "CronJob"} <= kinds


KUBERNETES = ("1.25.0", "1.37.0")
"""The oldest and the newest Kubernetes whose schemas kubernetes-validate holds: a field added after
the oldest, or one the newest removed, is refused."""


@pytest.mark.parametrize("version", KUBERNETES)
def test_every_manifest_is_a_valid_kubernetes_object_with_no_field_out_of_place(version: str) -> None:
    """Each manifest against the Kubernetes schema of its kind (strict: an unknown or misplaced
    field fails, as `kubectl apply` would refuse it), where no cluster can be brought up here."""
    for doc in _manifests():
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_check_refuses_a_misspelt_or_misplaced_field() -> None:
    """The check above can fail: a probe misspelt, and one put on the pod rather than its container."""
    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    misspelt = pod["containers"][0]
    misspelt["livenesProbe"] = misspelt.pop("livenessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="livenesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES[-1], strict=True)
    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    pod["readinessProbe"] = pod["containers"][0].pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES[-1], strict=True)


def test_every_pod_reads_its_key_files_as_the_images_user_and_no_one_else_can() -> None:
    """A Secret volume's files are root's. A pod that runs as the image's user (not root) reads them
    only through its fsGroup, with group read in the volume's mode; others may not read them. (With
    mode 0400 and no fsGroup the service could not read its own keys and would not start.)"""
    user = re.search(r"^USER (\d+)", (DEPLOY / "Containerfile").read_text(), re.M)
    assert user is not None
    pods = [pod for kind in ("Deployment", "Job", "CronJob") for pod in _pods(kind)]
    assert len(pods) == 3
    for pod in pods:
        context = pod.get("securityContext", {})
        assert context.get("runAsUser") == int(user.group(1)) and context.get("runAsNonRoot") is True
        secrets = [v["secret"] for v in pod["volumes"] if "secret" in v]
        assert secrets, pod["containers"][0]["name"]
        for secret in secrets:
            mode = secret.get("defaultMode", 0o644)
            assert context.get("fsGroup") is not None and mode & 0o040, (secret, context)
            assert mode & 0o007 == 0, secret  # (no one outside the pod's group)


def test_every_container_has_resource_requests_and_limits() -> None:
    for kind in ("Deployment", "Job", "CronJob"):
        for c in _containers(kind):
            for side in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][side]), (kind, c["name"], side)


def _names_set() -> set[str]:
    names: set[str] = set()
    for doc in _manifests():
        if doc["kind"] == "ConfigMap":
            names |= set(doc["data"])
        if doc["kind"] == "Secret":
            names |= {k for k in doc["stringData"] if k.startswith("CHILDINDEX_")}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for service in compose["services"].values():
        names |= {k for k in service.get("environment", {}) if k.startswith("CHILDINDEX_")}
    names |= set(
        re.findall(r"^(CHILDINDEX_[A-Z0-9_]+)=", (DEPLOY / "childindex.env.example").read_text(), re.M)
    )
    return names


def test_every_variable_deploy_sets_is_a_setting() -> None:
    names = _names_set()
    assert "CHILDINDEX_SECRET_KEY" in names and "CHILDINDEX_SEARCH_BACKEND" in names
    fields = {f"CHILDINDEX_{name.upper()}" for name in Settings.model_fields}
    assert names - fields == set()


def test_the_compose_topology_is_two_nodes_behind_the_proxy_with_health_checks() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"db", "es", "migrate", "app-a", "app-b", "proxy"} <= set(services)
    routes = _routes()
    for node in ("app-a", "app-b"):
        check = " ".join(services[node]["healthcheck"]["test"])
        path = re.search(r"127\.0\.0\.1:8000(/[a-z]+)", check)
        assert path and path.group(1) in routes
        assert services[node]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Each runs a command of the CLI (the image's entrypoint), the migration once before the nodes.
    commands = _commands()
    for name in ("migrate", "app-a", "app-b"):
        words = tuple(w for w in services[name]["command"] if not w.startswith("-"))
        assert words[:1] in commands or words[:-1] in commands, (name, services[name]["command"])
    config = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"option httpchk GET (/\S+)", config).group(1) in routes  # type: ignore[union-attr]
    assert set(re.findall(r"^\s+server (\S+) ", config, re.M)) == {"app-a", "app-b"}


def test_the_compose_services_run_the_built_image_as_its_user_not_root() -> None:
    """The migration and the nodes run the image the Containerfile builds (its locked runtime
    dependencies, its pages' assets), as the image's user; nothing from the host's checkout is
    mounted and nothing is installed at start (until 2026-12-07 they ran the checkout as root in
    the plain Python image, installing uv and the dependencies at each start)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    containerfile = (DEPLOY / "Containerfile").read_text()
    user = re.search(r"^USER (\d+)", containerfile, re.M)
    assert user is not None and int(user.group(1)) != 0
    for name in ("migrate", "app-a", "app-b"):
        service = compose["services"][name]
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == (
            DEPLOY / "Containerfile"
        ).resolve()
        assert service.get("user") in (None, user.group(1)), name  # (no root in its place)
        mounted = [v.split(":")[0] for v in service.get("volumes", [])]
        assert all(source in compose["volumes"] for source in mounted), (name, mounted)  # (named only)
        assert not any(word in " ".join(service["command"]) for word in ("pip", "uv ", "sh -c")), name
    # The Bulk Data volume starts as a copy of the image's folder: the service's user's, and only its.
    folder = compose["services"]["app-a"]["environment"]["CHILDINDEX_FHIR_BULK_DIR"]
    made = re.search(
        rf"^RUN install -d -o (\d+) -g (\d+) -m (0\d+) {re.escape(folder)}$", containerfile, re.M
    )
    assert made and made.group(1) == user.group(1) and made.group(3) == "0700"
    assert containerfile.index(made.group(0)) < containerfile.index(user.group(0))  # (made as root)


def test_the_compose_database_takes_every_connection_its_nodes_may_open() -> None:
    """Each app process may open its pool's every connection and the event loop's at a peak
    (directory.db.pool_sizes: the shared threads, the search and upstream lanes, the background
    threads); a node is its workers and the supervisor that runs its audit writer and jobs. The
    database must take them all and a few more (the migration, a psql), or a peak on two nodes
    would meet "too many clients" (PostgreSQL's default is 100; four processes need 104)."""
    from directory.db import LOOP_CONNECTIONS, pool_sizes

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    words = compose["services"]["db"]["command"]
    (limit,) = [int(w.split("=", 1)[1]) for w in words if str(w).startswith("max_connections=")]
    threads = Settings.model_fields["request_threads"].default
    per_process = sum(pool_sizes(threads)) + LOOP_CONNECTIONS
    processes = sum(
        int(compose["services"][n]["environment"]["CHILDINDEX_WORKERS"]) + 1 for n in ("app-a", "app-b")
    )
    assert limit >= processes * per_process + 10, (limit, processes, per_process)


def _under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def test_every_node_writes_bulk_data_where_every_node_reads_it() -> None:
    """A Bulk Data export is written by the node that runs it, on its disk, and its files are
    downloaded through any node: each topology puts CHILDINDEX_FHIR_BULK_DIR on one writable place
    every node mounts (with the default, `var/bulk` under the working directory, the compose nodes
    could not write at all (the checkout is mounted read-only), the systemd unit's /var/bulk is
    read-only under ProtectSystem=strict, and each Kubernetes pod had a folder of its own)."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    sources = set()
    for node in ("app-a", "app-b"):
        service = compose["services"][node]
        folder = service["environment"]["CHILDINDEX_FHIR_BULK_DIR"]
        mounts = [v.split(":") for v in service["volumes"]]
        (mount,) = [m for m in mounts if _under(folder, m[1])]
        assert mount[0] in compose["volumes"] and mount[2:] != ["ro"], mount  # (a named volume, writable)
        sources.add(mount[0])
    assert len(sources) == 1

    (config,) = [d for d in _manifests() if d["kind"] == "ConfigMap"]
    folder = config["data"]["CHILDINDEX_FHIR_BULK_DIR"]
    (deployment,) = [d for d in _manifests() if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if _under(folder, m["mountPath"])]
    assert not mount.get("readOnly")
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claims = {d["metadata"]["name"]: d for d in _manifests() if d["kind"] == "PersistentVolumeClaim"}
    assert "ReadWriteMany" in claims[volume["persistentVolumeClaim"]["claimName"]]["spec"]["accessModes"]

    unit = (DEPLOY / "systemd" / "childindex.service").read_text()
    env = (DEPLOY / "childindex.env.example").read_text()
    folder_match = re.search(r"^CHILDINDEX_FHIR_BULK_DIR=(\S+)$", env, re.M)
    state = re.search(r"^StateDirectory=(\S+)$", unit, re.M)
    assert folder_match and state and _under(folder_match.group(1), f"/var/lib/{state.group(1)}")
    assert "ProtectSystem=strict" in unit and re.search(r"^StateDirectoryMode=0700$", unit, re.M)


def test_the_haproxy_config_is_valid() -> None:
    haproxy = shutil.which("haproxy") or shutil.which("/usr/sbin/haproxy")
    if haproxy is None:
        if IN_CI:
            pytest.fail("haproxy is not installed (tests/services/haproxy.sh installs it)")
        pytest.skip("haproxy is not installed")
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(DEPLOY / "haproxy" / "haproxy.cfg")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


SYSTEMD = DEPLOY / "systemd"


def _unit(path: Path) -> dict[str, list[str]]:
    """A unit file's settings, each key's values in order (systemd allows a key more than once)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _commands() -> set[tuple[str, ...]]:
    """Every command the CLI runs (not the groups), as its words: ("serve",), ("audit", "verify"), ..."""
    import typer

    from childindex.cli import app as cli

    found: set[tuple[str, ...]] = set()

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)  # (a group: Typer brings its own click)
        if subcommands is None:
            found.add(path)
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(cli), ())
    return found


def test_the_systemd_units_run_commands_the_cli_has_and_every_timer_has_its_service() -> None:
    commands = _commands()
    services = sorted(SYSTEMD.glob("*.service"))
    assert len(services) >= 4
    for service in services:
        settings = _unit(service)
        for line in settings["ExecStart"] + settings.get("ExecStartPre", []):
            words = line.lstrip("-").split()
            assert words[0] == "/opt/childindex/.venv/bin/childindex", (service.name, line)
            assert tuple(words[1:]) in commands, (service.name, line)
    for timer in SYSTEMD.glob("*.timer"):
        assert timer.with_suffix(".service").exists(), timer.name
        assert _unit(timer)["OnCalendar"], timer.name


def test_the_service_outweighs_its_own_batch_units_for_the_cores() -> None:
    """Beside a busy neighbour a search's latency is the cores the service keeps (docs/operations.md,
    "A busy neighbour"): the service is weighted above every unit's default (100), and its own batch
    work (the timers' units) below it, so a nightly verify or purge never takes a search's core."""
    weight = int(_unit(SYSTEMD / "childindex.service")["CPUWeight"][0])
    assert weight > 100
    batch = [t.with_suffix(".service") for t in SYSTEMD.glob("*.timer")]
    assert len(batch) >= 3
    for unit in batch:
        settings = _unit(unit)
        assert int(settings["CPUWeight"][0]) < 100, unit.name
        assert settings["Type"] == ["oneshot"], unit.name


def test_the_image_builds_the_pages_assets_as_make_web_does() -> None:
    """The pages' assets are not in the repository (`make web` builds them): the image builds them
    in a stage of its own with the same commands and copies them where the app serves them from.
    (No container runtime runs here to build it: this checks the file.)"""
    containerfile = (DEPLOY / "Containerfile").read_text()
    make_web = re.search(r"^web:.*\n\t@cd childindex/web/frontend && (.+)$", _makefile(), re.M)
    assert make_web is not None
    for command in make_web.group(1).split(" && "):  # npm ci ..., npm run --silent build
        assert f"RUN {command}" in containerfile, command
    stage = re.search(r"^FROM node:\S+ AS (\w+)$", containerfile, re.M)
    assert stage is not None
    assert f"COPY --from={stage.group(1)} /build/childindex/web/static childindex/web/static" in containerfile
    assert containerfile.index("COPY --from=") > containerfile.index("FROM python:")


def _makefile() -> str:
    return (DEPLOY.parent / "Makefile").read_text()


def test_the_image_leaves_out_databases_keys_and_local_environments() -> None:
    """`COPY . .` from a working copy would take its databases (children's records), key files and
    virtual environment into the image: .dockerignore (read by Docker, Podman and Buildah) leaves
    them out. Checked with each pattern against the paths a working copy holds."""
    import fnmatch

    patterns = [
        line.strip()
        for line in (DEPLOY.parent / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        """As the builders read the file: a pattern matches a path from the root (or, after `**/`, a
        name at any depth), and a folder matched leaves out everything in it."""
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        for pattern in patterns:
            if pattern.startswith("**/"):
                if any(fnmatch.fnmatchcase(part, pattern[3:]) for part in parts):
                    return True
            elif any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
                return True
        return False

    for path in (
        "var/childindex.db",
        "var/demo.db-wal",
        "var/bulk/Patient.ndjson",  # (a Bulk Data export: children's records)
        "var/audit.key",
        "deploy/keys/secrets.key",
        "elsewhere/copy.db",
        ".venv/bin/python",
        "childindex/web/frontend/node_modules/sass/package.json",
        ".git/config",
    ):
        assert ignored(path), path
    for path in ("childindex/app.py", "pyproject.toml", "uv.lock", "childindex/web/frontend/build.mjs"):
        assert not ignored(path), path
