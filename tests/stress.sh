#!/usr/bin/env bash
# Run the test suite on a busy machine: two CPU-bound processes run beside it from start to end.
#
#   tests/stress.sh                  # the whole suite, as README.md's test command runs it
#   tests/stress.sh tests/test_loop.py -x   # arguments go to pytest
#
# The suite must be green this way: no test may depend on how fast the machine is. The burners are
# stopped when the suite ends, fails or is interrupted.
set -uo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
burners=()
stop() {
  for pid in "${burners[@]}"; do kill "$pid" 2>/dev/null; done
  wait "${burners[@]}" 2>/dev/null
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
for _ in 1 2; do
  "$python" -c "while True: pass" &
  burners+=("$!")
done
echo "stress: CPU burners ${burners[*]} running beside the suite" >&2
"$python" -m pytest "$@"
