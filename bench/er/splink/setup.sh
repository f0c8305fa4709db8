#!/usr/bin/env bash
# Creates the separate virtualenv for the Splink baseline (.venv-splink at the repository root, or
# $SPLINK_VENV) and installs the exact pins from requirements.txt beside this script.
# Idempotent: a stamp file inside the venv records the hash of requirements.txt and the Python
# version; when it matches, nothing is done. Needs only Python 3.11 (and Java 17 for the Spark
# backend at run time). Nothing is downloaded besides the pinned PyPI packages: Splink's
# similarity-UDF jar ships inside the splink wheel.
# Usage: bench/er/splink/setup.sh        (PYTHON=python3.11 and SPLINK_VENV=... may be overridden)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
python=${PYTHON:-python3.11}
venv=${SPLINK_VENV:-$repo/.venv-splink}
requirements=$here/requirements.txt
stamp=$venv/.splink-setup.stamp

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup.sh: $python not found; Python 3.11 is required" >&2
  exit 1
fi
py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$py_version" != "3.11" ]; then
  echo "setup.sh: $python is Python $py_version; Python 3.11 is required" >&2
  exit 1
fi

want="requirements-sha256=$(sha256sum "$requirements" | cut -d' ' -f1) python=$py_version"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  echo "setup.sh: $venv is up to date ($want); nothing to do"
  exit 0
fi

if [ -e "$venv" ]; then
  echo "setup.sh: $venv is missing its stamp or out of date; recreating it"
  rm -rf -- "$venv"
fi
echo "setup.sh: creating $venv with $python ($py_version)"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
echo "setup.sh: installing $(grep -cvE '^\s*(#|$)' "$requirements") pinned packages from $requirements"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
"$venv/bin/python" -m pip check

# The Spark backend loads Splink's similarity UDFs (jaro_winkler, damerau_levenshtein, ...) from the
# jar that ships in the splink wheel; check that it is there for the installed Spark major version.
jar=$("$venv/bin/python" -c 'from splink.backends.spark import similarity_jar_location as j; print(j())')
if [ ! -f "$jar" ]; then
  echo "setup.sh: Splink's similarity jar is missing: $jar" >&2
  exit 1
fi
"$venv/bin/python" - <<'PY'
import duckdb, pyspark, splink
print(f"setup.sh: splink {splink.__version__}, duckdb {duckdb.__version__}, pyspark {pyspark.__version__}")
PY
echo "setup.sh: Spark similarity UDF jar (from the splink wheel): $jar"
if command -v java >/dev/null 2>&1; then
  echo "setup.sh: java for the Spark backend: $(java -version 2>&1 | head -n 1)"
else
  echo "setup.sh: WARNING: no java on PATH; the Spark backend needs Java 17 (the DuckDB one does not)"
fi

echo "$want" > "$stamp"
echo "setup.sh: done; run: $venv/bin/python $here/run_splink.py --help"
