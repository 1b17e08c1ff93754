#!/bin/sh
# Set up what is missing on a Debian machine (as root), then run the demo or the tests.
#   ./dev.sh demo   process the bundled samples into the default store and write an export
#   ./dev.sh test   ruff and the test suite (what CI runs)
set -eu
cd "$(dirname "$0")"
mode="${1:-}"
case "$mode" in demo|test|setup) ;; *) echo "usage: $0 demo|test|setup" >&2; exit 2 ;; esac

# Debian packages: OCR and the fonts the samples and tests are drawn with; PostgreSQL for the tests.
packages="tesseract-ocr tesseract-ocr-jpn tesseract-ocr-script-jpan mecab-ipadic fonts-ipaexfont-gothic fonts-ipaexfont-mincho fonts-klee fonts-kiloji fonts-seto fonts-yusei-magic"
# Tesseract's C API for tesserocr, built against Debian's libtesseract (the engine the CLI runs).
packages="$packages libtesseract-dev libleptonica-dev pkg-config g++"
# Held-out font families (samples/values/fonts.toml): sets written in fonts the confidence model never saw.
packages="$packages fonts-takao-gothic fonts-vlgothic fonts-umeplus fonts-aoyagi-soseki fonts-motoya-l-cedar fonts-motoya-l-maruberi"
[ "$mode" = test ] && packages="$packages postgresql dovecot-imapd dovecot-lmtpd postfix openssl chromium"
python3 -c 'import venv, ensurepip' 2>/dev/null || packages="$packages python3 python3-venv"
python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' \
  2>/dev/null || packages="$packages python3-dev"
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "installing Debian packages:$missing" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The virtual environment, reinstalled only when pyproject.toml changed.
[ -x .venv/bin/python ] || python3 -m venv .venv
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ]; then
  # tesserocr from source: PyPI's wheel carries a Tesseract of its own, which reads differently
  PIP_NO_BINARY=tesserocr .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
  touch .venv/.installed
fi

case "$mode" in
  demo)
    .venv/bin/renraku process samples/inbox --export "${RENRAKU_EXPORT:-export}"
    ;;
  test)
    .venv/bin/ruff check .
    .venv/bin/python -m pytest -q
    ;;
esac
