#!/usr/bin/env bash
# Fresh-clone check: clone this repository (its committed HEAD) into a temporary folder and run README.md's two
# commands there, verbatim, each in its own clone, printing how long the install and the run took and how big
# the virtualenv is. Timings are printed, never asserted.
#
#   scripts/fresh_clone_check.sh            # both commands (the second runs the whole test suite)
#   FRESH_CLONE_PYTEST_ARGS="tests/test_demo.py" scripts/fresh_clone_check.sh   # the tests: only these
#   FRESH_CLONE_ONLY=1 scripts/fresh_clone_check.sh                             # only the first command
#   FRESH_CLONE_NO_CACHE=1 …                # install without pip's cache (a first-time user's install)
#
# When the package index cannot be reached the check is skipped (exit 0): it tests the README, not the network.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/flywheel-fresh-clone.XXXXXX")"
trap 'rm -rf "$work"' EXIT
[[ "${FRESH_CLONE_NO_CACHE:-}" == 1 ]] && export PIP_NO_CACHE_DIR=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

# README's commands: the lines after "# 1." and "# 2." in its first ```bash block
mapfile -t commands < <(python3 - "$repo/README.md" <<'EOF'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).splitlines()
for number in ("# 1.", "# 2."):
    i = next(i for i, line in enumerate(block) if line.startswith(number))
    print(block[i + 1].strip())
EOF
)
if [[ ${#commands[@]} -ne 2 || -z "${commands[0]}" || -z "${commands[1]}" ]]; then
  echo "fresh-clone: could not find README's two commands (# 1. and # 2. in its first bash block)" >&2
  exit 1
fi

if ! timeout 60 python3 -m pip download --no-deps -q -d "$work/probe" wheel >/dev/null 2>&1; then
  echo "fresh-clone: skipped (the package index cannot be reached from here)"
  exit 0
fi

run() {  # run N COMMAND: clone, then the install part and the last step of COMMAND, timed separately
  local n="$1" command="$2" clone="$work/clone$1"
  git clone -q --no-local "$repo" "$clone"
  local install="${command% && *}" last="${command##* && }"
  if [[ -n "${FRESH_CLONE_PYTEST_ARGS:-}" && "$last" == pytest* ]]; then
    last="$last $FRESH_CLONE_PYTEST_ARGS"
  fi
  echo "fresh-clone [$n] install: $install"
  local t0=$SECONDS
  (cd "$clone" && bash -c "$install" >"$work/install$n.log" 2>&1) || {
    tail -40 "$work/install$n.log" >&2; echo "fresh-clone [$n] install FAILED" >&2; return 1; }
  local install_s=$((SECONDS - t0))
  local size_mb
  size_mb=$(du -sm "$clone/.venv" | cut -f1)
  echo "fresh-clone [$n] install took ${install_s} s; .venv is ${size_mb} MB"
  echo "fresh-clone [$n] run: $last"
  t0=$SECONDS
  (cd "$clone" && . .venv/bin/activate && bash -c "$last") || {
    echo "fresh-clone [$n] run FAILED" >&2; return 1; }
  echo "fresh-clone [$n] run took $((SECONDS - t0)) s"
}

run 1 "${commands[0]}"
[[ "${FRESH_CLONE_ONLY:-}" == 1 ]] || run 2 "${commands[1]}"
echo "fresh-clone: OK"
