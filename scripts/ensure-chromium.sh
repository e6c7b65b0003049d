#!/usr/bin/env bash
# npm test's pretest: the local console's browser test (test/local/console-browser.test.ts)
# drives the system Chromium through playwright-core, which downloads no browser. Installs
# Debian's chromium package when it is missing and this runs as root; otherwise says how and
# leaves it to the browser test, which then fails with the same instruction (never skipped).
if [ -n "${LOGRELAY_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "pretest: installing chromium for the console's browser test (apt-get install chromium)"
  apt-get update -qq && apt-get install -y -qq chromium
  exit $?
fi
echo "pretest: Chromium is missing, so test/local/console-browser.test.ts will fail. Install it with 'sudo apt-get install -y chromium', or set LOGRELAY_CHROMIUM to a Chromium or Chrome binary." >&2
exit 0
