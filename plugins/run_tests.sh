#!/usr/bin/env bash
# Install every plugin distribution under plugins/ into the current Python environment (editable, with
# its "test" extra when it has one) and run each plugin's tests. CI calls it; so can you:
#
#     bash plugins/run_tests.sh                 # uses $PYTHON, else python, else python3
#     PYTHON=.venv/bin/python bash plugins/run_tests.sh
#
# seqtag itself is installed from this repository first if the environment lacks it. Exits non-zero
# if an install or any plugin's tests fail; every plugin is tested even after a failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if command -v python >/dev/null 2>&1; then py=python; else py=python3; fi
fi
if [[ "$py" == */* ]]; then  # a relative path must survive the cd below (keep venv symlinks as they are)
  py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"
fi

pip_opts=(--quiet --disable-pip-version-check)
# Build with the setuptools already installed (no download) when it is recent enough.
if "$py" -c "import setuptools, sys; sys.exit(int(setuptools.__version__.split('.')[0]) < 68)" 2>/dev/null; then
  pip_opts+=(--no-build-isolation)
fi

if ! "$py" -c "import seqtag" 2>/dev/null; then
  echo "== installing seqtag from $repo"
  "$py" -m pip install "${pip_opts[@]}" -e "$repo"
fi

plugins=()
for dir in "$here"/*/; do
  dir="${dir%/}"
  [ -f "$dir/pyproject.toml" ] && plugins+=("$dir")
done
if [ "${#plugins[@]}" -eq 0 ]; then
  echo "no plugin distributions under $here" >&2
  exit 1
fi

for dir in "${plugins[@]}"; do
  target="$dir"
  if grep -q '^test *= *\[' "$dir/pyproject.toml"; then target="$dir[test]"; fi
  echo "== installing $(basename "$dir")"
  "$py" -m pip install "${pip_opts[@]}" -e "$target"
done

status=0
start=$SECONDS
for dir in "${plugins[@]}"; do
  name="$(basename "$dir")"
  if [ ! -d "$dir/tests" ]; then
    echo "== $name: no tests/ folder" >&2
    status=1
    continue
  fi
  echo "== testing $name"
  if ! (cd "$dir" && "$py" -m pytest -p no:cacheprovider tests); then
    echo "== $name: FAILED" >&2
    status=1
  fi
done
echo "== plugin tests done in $((SECONDS - start))s: $([ $status -eq 0 ] && echo all passed || echo some FAILED)"
exit $status
