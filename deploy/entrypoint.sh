#!/bin/sh
# Entry point of the backbone image. When VDX_BROKER_USER is set and VDX_AMQP_URL is not,
# it builds VDX_AMQP_URL for that broker account from the passwords `backbone provision`
# generated (VDX_BROKER_PASSWORDS), so no password is written in a config file or in
# compose.yaml. Then it runs the command.
set -eu

if [ -n "${VDX_BROKER_USER:-}" ] && [ -z "${VDX_AMQP_URL:-}" ]; then
    VDX_AMQP_URL="$(python3 - <<'PY'
import os
from urllib.parse import quote

import yaml

path = os.environ.get("VDX_BROKER_PASSWORDS", "/var/lib/vdx/secrets/broker-passwords.yaml")
user = os.environ["VDX_BROKER_USER"]
with open(path, encoding="utf-8") as handle:
    passwords = yaml.safe_load(handle) or {}
if user not in passwords:
    raise SystemExit(f"no password for broker user {user!r} in {path}: run deploy/init.sh")
host = os.environ.get("VDX_BROKER_HOST", "rabbitmq-1")
port = os.environ.get("VDX_BROKER_PORT", "5672")
print(f"amqp://{quote(user, safe='')}:{quote(str(passwords[user]), safe='')}@{host}:{port}/")
PY
)"
    export VDX_AMQP_URL
fi

exec "$@"
