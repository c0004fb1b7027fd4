#!/usr/bin/env bash
# Installs everything watcher needs on Debian/Ubuntu: the system packages Manim builds
# against and LaTeX (only those missing), then a virtual environment in ./.venv with
# the pinned Python packages. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

system_packages=(
  # manimpango and pycairo build from source against these
  libpango1.0-dev libcairo2-dev pkg-config
  # Tex/MathTex and everything built on them (axis numbers, DecimalNumber, ...)
  texlive-latex-base texlive-latex-extra texlive-fonts-recommended dvisvgm
  # for the report test: the HTML report is checked in headless Chromium
  chromium
  # distributed mode (executor: celery) uses Redis as its broker; the tests start their own
  redis-server
)
missing=()
for pkg in "${system_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing system packages: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# When the daemon runs as root, renders run as this unprivileged user (sandbox.user).
if [ "$(id -u)" -eq 0 ] && ! id -u watcher-render >/dev/null 2>&1; then
  echo "setup: creating the render user watcher-render" >&2
  useradd --system --no-create-home --shell /usr/sbin/nologin watcher-render
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
# constraints.txt pins every package, Manim's own dependencies included, to versions
# seen rendering together. The celery extra is for distributed mode and its tests.
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[test,celery]"
echo "setup: ready ($(.venv/bin/python -c 'import manim, sys; print("manim", manim.__version__, "python", sys.version.split()[0])' 2>/dev/null))" >&2
