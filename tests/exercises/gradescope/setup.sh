#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image
# (the zip is unpacked in $AUTOGRADER_ROOT/source, default /autograder/source).
# It installs what the grader and the lessons need, and makes the
# unprivileged user that runs every student program (see run_autograder).
set -euo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
apt-get update -qq
apt-get install -y -qq python3 python3-pip >/dev/null
# pytest runs the grader; gevent is lesson 11's.  --break-system-packages: the
# image is a throw-away container, and Debian 12 / Ubuntu 24.04 refuse without it.
python3 -m pip install -q pytest pytest-timeout gevent 2>/dev/null \
  || python3 -m pip install -q --break-system-packages pytest pytest-timeout gevent
id student >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
  --shell /usr/sbin/nologin --user-group student
cp "$ROOT/source/run_autograder" "$ROOT/run_autograder"
chmod 755 "$ROOT/run_autograder"
