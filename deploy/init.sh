#!/bin/sh
# One-shot set-up of the compose stack (the `init` service runs it as root, before the
# broker nodes, routers and adapters start; running it again is safe):
#   1. checks the directory (VDX_DIRECTORY, default /etc/vdx/directory.yaml);
#   2. creates the development PKI (a CA, a key and certificate per served agency, a CRL);
#   3. provisions the broker: `backbone provision --definitions` (users with their
#      connection/channel limits, permissions, the queue-bounding policies of
#      VDX_BROKER_BOUNDS), plus the "/" vhost and an operator account, into the definitions
#      file every RabbitMQ node imports at boot;
#   4. hands the files to the users that read them (vdx: uid 10001, rabbitmq: uid 999).
# Outside compose: VDX_STATE_DIR=./state VDX_DIRECTORY=deploy/config/directory.yaml \
#   VDX_BROKER_BOUNDS=deploy/config/broker-bounds.yaml VDX_CHOWN=0 sh deploy/init.sh
set -eu

STATE="${VDX_STATE_DIR:-/var/lib/vdx}"
DIRECTORY="${VDX_DIRECTORY:-/etc/vdx/directory.yaml}"
# Connection/channel limits per account and the queue bounds (deploy/config/broker-bounds.yaml).
BOUNDS="${VDX_BROKER_BOUNDS:-/etc/vdx/broker-bounds.yaml}"
PKI="$STATE/pki"
SECRETS="$STATE/secrets"
BROKER="$STATE/broker"
# The organ codes (or hub ids) that get a development key and certificate.
IDENTITIES="${VDX_PKI_IDENTITIES:-000.00.00.G22 000.00.00.H53 000.21.32.H53}"

mkdir -p "$PKI" "$SECRETS" "$BROKER"

echo "== directory"
backbone directory check "$DIRECTORY"

echo "== development PKI in $PKI"
if [ ! -f "$PKI/ca.cert.pem" ]; then
    backbone pki init --dir "$PKI"
fi
for identity in $IDENTITIES; do
    if [ ! -f "$PKI/issued/$identity.cert.pem" ]; then
        backbone pki issue "$identity" --dir "$PKI"
    fi
done
backbone pki crl --dir "$PKI"

echo "== broker definitions in $BROKER"
backbone provision --directory "$DIRECTORY" \
    --passwords "$SECRETS/broker-passwords.yaml" \
    --bounds "$BOUNDS" \
    --definitions "$BROKER/provisioned.json"
VDX_BROKER_DIR="$BROKER" python3 - <<'PY'
import json
import os
from pathlib import Path

from backbone.broker.provision import rabbit_password_hash

broker = Path(os.environ["VDX_BROKER_DIR"])
definitions = json.loads((broker / "provisioned.json").read_text())
# A node importing definitions at boot creates neither the default vhost nor guest.
definitions["vhosts"] = [
    {
        "name": "/",
        "description": "vdx backbone",
        "tags": [],
        "default_queue_type": "quorum",
        "metadata": {"description": "vdx backbone", "tags": [], "default_queue_type": "quorum"},
    }
]
admin = os.environ.get("VDX_RABBITMQ_ADMIN_USER", "vdx-admin")
definitions["users"].append(
    {
        "name": admin,
        "password_hash": rabbit_password_hash(
            os.environ.get("VDX_RABBITMQ_ADMIN_PASSWORD", "change-me")
        ),
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": ["administrator"],
    }
)
definitions["permissions"].append(
    {"user": admin, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
)
target = broker / "definitions.json"
target.write_text(json.dumps(definitions, indent=2))
target.chmod(0o600)
print(f"wrote {target}: {len(definitions['users'])} users")
PY

if [ "${VDX_CHOWN:-1}" = "1" ]; then
    chown -R 10001:10001 "$PKI" "$SECRETS"
    chmod 0700 "$SECRETS"
    chown 999:999 "$BROKER/definitions.json"
    rm -f "$BROKER/provisioned.json"
fi
echo "== ready"
