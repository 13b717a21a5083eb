#!/usr/bin/env bash
# The core package with numpy 2: a fresh virtual environment holding symtrain without
# extras (no escnn, no lie_learn) and the newest numpy 2, then a core smoke test in it
# (.ci/numpy2_smoke.py). CI runs it after `make test`; it takes a few minutes because
# torch is installed into the fresh environment (from this machine's disk).
#
#   .ci/numpy2_core.sh [VENV_DIR]     # default: .venv-numpy2 (reused when present)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-numpy2}"
PYTHON="${PYTHON:-python3}"
start=$(date +%s)
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PY="$(cd "$VENV" && pwd)/bin/python"  # absolute: the smoke test runs from inside the venv folder
"$PY" -m pip install --quiet --upgrade pip
# The core package only (no extras), with numpy 2 asked for explicitly: the install
# fails here if any core dependency still pins numpy<2.
"$PY" -m pip install --quiet "numpy>=2" .
installed=$(date +%s)
"$PY" - <<'PY'
import importlib.util, numpy
assert int(numpy.__version__.split(".")[0]) >= 2, numpy.__version__
for extra in ("escnn", "lie_learn"):
    assert importlib.util.find_spec(extra) is None, f"{extra} is installed: the core install must not need it"
print(f"numpy {numpy.__version__}; escnn and lie_learn absent")
PY
# Run from another folder, so the installed package (not the source tree) is imported.
(cd "$VENV" && "$PY" "$OLDPWD/.ci/numpy2_smoke.py")
end=$(date +%s)
echo "numpy2_core: install $((installed - start)) s, smoke test $((end - installed)) s"
