#!/usr/bin/env bash
# Run a command inside the project environment (loopback DDS, per-run domain id).
set -euo pipefail
# shellcheck disable=SC1091
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
exec "$@"
