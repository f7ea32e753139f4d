# evalledger's launcher: dvc.yaml's eval stage runs `sh .evalledger.sh cell ...`, so that
# `dvc repro` and `dvc exp run` work without an activated virtualenv. Written by
# evalledger; commit it with dvc.yaml. It runs the Python that last ran evalledger in
# this clone (recorded, git-ignored, in .evalledger/python), else `evalledger` on PATH.
here=$(dirname -- "$0")
py=
if [ -r "$here/.evalledger/python" ]; then read -r py < "$here/.evalledger/python"; fi
if [ -n "$py" ] && [ -x "$py" ]; then exec "$py" -P -m evalledger "$@"; fi
if command -v evalledger >/dev/null 2>&1; then exec evalledger "$@"; fi
echo "evalledger: not found (nothing recorded in $here/.evalledger/python, none on PATH): run <venv>/bin/evalledger run here once, or activate the virtualenv that has it" >&2
exit 127
