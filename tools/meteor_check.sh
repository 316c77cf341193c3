#!/usr/bin/env bash
# meteor_check.sh — checks the official METEOR of `lorac metrics` against meteor-1.5.jar (the jar the
# E2E scorer runs through pycocoevalcap) on the E2E test set; see tools/meteor_check.py for the
# hypotheses. Needs Java: Debian's default-jre-headless, installed here when `java` is missing
# (`sudo apt-get install -y --no-install-recommends default-jre-headless`), and the METEOR data
# (tools/fetch_meteor.sh, run here when missing). Python: the standard library only.
# Run: tools/meteor_check.sh [build/lorac] [extra meteor_check.py options, e.g. --fixture tests/fixtures/meteor]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LORAC=${1:-$ROOT/build/lorac}
[ $# -gt 0 ] && shift
[ -x "$LORAC" ] || { echo "meteor_check: $LORAC is not built (make, or pass the lorac binary)" >&2; exit 1; }
if ! command -v java >/dev/null; then
  echo "meteor_check: java is missing; installing Debian's default-jre-headless (apt-get)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends default-jre-headless
fi
DATA=$("$ROOT/tools/fetch_meteor.sh")
exec python3 "$ROOT/tools/meteor_check.py" --lorac "$LORAC" --meteor-data "$DATA" "$@"
