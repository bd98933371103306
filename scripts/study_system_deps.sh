#!/usr/bin/env bash
# What the study tests need from Debian, on a fresh machine, as root: PostgreSQL's server (the
# tests start their own throwaway cluster on 127.0.0.1) and Chromium (driven headless by the
# Python playwright package, which pyproject's test extra installs; no browser is downloaded).
# Idempotent: when both are there it only looks, and returns at once.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
  echo "study system deps: postgresql and chromium are installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "study system deps: missing ${missing[*]}; run this script as root (it uses apt-get)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "study system deps: installing ${missing[*]}"
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "study system deps: initdb still missing" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "study system deps: /usr/bin/chromium still missing" >&2; exit 1; }
echo "study system deps: done"
