#!/usr/bin/env bash
# Install (or upgrade) ProcVision Runner from this bundle on a station with no network.
#
#   ./install.sh [--prefix /opt/procvision-runner] [--root /var/lib/procvision] [--user procvision]
#                [--systemd] [--python /usr/bin/python3.11]
#
# Layout it creates under PREFIX:
#   versions/<version>-<stamp>/venv   one venv per install, built from the bundled wheels only
#   current -> versions/...           switched atomically once the new venv works
#   bin/procvision-runner             wrapper passing --config PREFIX/etc/runner_config.json
#   etc/runner_config.json            written on first install (root, host, port); kept on upgrade
#   share/example/*.zip               the example algorithm package
# A failed upgrade removes its half-built version and leaves `current` (the old install) untouched.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prog="install.sh"
die() { echo "$prog: error: $*" >&2; exit 1; }
step() { echo "$prog: $*"; }

[ -f "$here/bundle.env" ] || die "bundle.env is missing next to install.sh: unpack the whole bundle"
# shellcheck source=/dev/null
. "$here/bundle.env"

prefix="/opt/procvision-runner"
root=""
user=""
systemd=0
python=""
unit_dir="${PROCVISION_SYSTEMD_UNIT_DIR:-/etc/systemd/system}"

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-0}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a folder"; prefix="$2"; shift 2 ;;
    --root) [ $# -ge 2 ] || die "--root needs a folder"; root="$2"; shift 2 ;;
    --user) [ $# -ge 2 ] || die "--user needs a user name"; user="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs an interpreter path"; python="$2"; shift 2 ;;
    --systemd) systemd=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "$prog: unknown option $1" >&2; usage 2 ;;
  esac
done

case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
config="$prefix/etc/runner_config.json"

# An upgrade keeps the root the installed config names (unless --root says otherwise).
if [ -z "$root" ] && [ -f "$config" ]; then
  root="$(sed -n 's/^ *"root": *"\(.*\)",\{0,1\} *$/\1/p' "$config" | head -n1)"
fi
root="${root:-/var/lib/procvision}"
case "$root" in /*) ;; *) root="$(pwd)/$root" ;; esac

if [ "$systemd" = 1 ] && [ -z "$user" ]; then
  user="procvision"
fi
if [ -n "$user" ] && [ "$(id -u)" != 0 ] && [ "$user" != "$(id -un)" ]; then
  die "--user $user needs root (run with sudo), or leave --user out to run as $(id -un)"
fi

step "checking the bundle's checksums"
(cd "$here" && sha256sum --quiet --strict -c SHA256SUMS) \
  || die "the bundle is damaged (checksum mismatch above): copy it to the station again"

# --- find the Python this bundle's wheels were built for -------------------------------------------------
want="$PV_PYTHON"
python_ok() {
  "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" >/dev/null 2>&1
}
if [ -n "$python" ]; then
  python_ok "$python" || die "--python $python is not Python $want (this bundle's wheels are for Python $want)"
else
  for cand in "python$want" "/usr/bin/python$want" "/usr/local/bin/python$want" python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && python_ok "$cand"; then
      python="$(command -v "$cand")"; break
    fi
  done
  if [ -z "$python" ]; then
    found="$(for c in python3 python3.9 python3.10 python3.11 python3.12 python3.13; do
               command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null
             done | sort -u | tr '\n' ' ')"
    die "this bundle needs Python $want (python$want on PATH or --python PATH); found: ${found:-no python3}. \
Install Python $want from the station's OS packages, or build a bundle for the station's Python: \
./dev bundle --python X.Y --platform $PV_PLATFORM"
  fi
fi
# A launcher (pyenv shim, alternatives link) may change later: the venv gets the real interpreter.
python="$("$python" -c 'import sys; print(sys.executable)')"
step "using $python ($("$python" --version 2>&1))"

# --- build the new version next to the old one --------------------------------------------------------
stamp="$(date -u +%Y%m%d%H%M%S)-$$"
rel="versions/$PV_VERSION-$stamp"
new="$prefix/$rel"
# uv is unpacked next to the new venv, not into /tmp: stations often mount /tmp noexec.
work="$new/.bootstrap"
cleanup() {
  status=$?
  rm -rf "$work"
  if [ "$status" != 0 ]; then
    rm -rf "$new"
    echo "$prog: install failed; nothing was changed$( [ -L "$prefix/current" ] && echo ": the previous install in $(readlink -f "$prefix/current") still runs")" >&2
  fi
}
trap cleanup EXIT
mkdir -p "$new" "$work" "$prefix/bin" "$prefix/etc"

# uv (a dependency of the runner, so its wheel is bundled) builds the venv: fast, and it needs
# neither ensurepip nor a network.
uv_wheel="$(ls "$here"/wheels/uv-*.whl 2>/dev/null | head -n1)"
[ -n "$uv_wheel" ] || die "no uv wheel in $here/wheels: the bundle is incomplete"
"$python" - "$uv_wheel" "$work/uv" <<'PY' || die "cannot unpack uv from the bundle"
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as zf:
    name = next(n for n in zf.namelist() if n.endswith(".data/scripts/uv"))
    with zf.open(name) as src, open(dest, "wb") as out:
        out.write(src.read())
os.chmod(dest, 0o755)
PY
export UV_OFFLINE=1 UV_NO_CACHE=1 UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1
nwheels="$(ls "$here"/wheels/*.whl | wc -l)"
step "creating the venv in $new/venv"
"$work/uv" venv --quiet --python "$python" "$new/venv" || die "creating the venv with $python failed"
step "installing procvision-runner $PV_VERSION from $nwheels bundled wheels (offline)"
"$work/uv" pip install --quiet --offline --no-index --find-links "$here/wheels" --python "$new/venv/bin/python" \
  "procvision-runner==$PV_VERSION" || die "installing from the bundled wheels failed (see above)"
step "checking the new install"
"$new/venv/bin/procvision-runner" --version >/dev/null || die "the new procvision-runner does not start"
"$new/venv/bin/python" -I -c "import runner.daemon" || die "the new install cannot load the daemon (see above)"
mkdir -p "$new/share/example" "$new/share/systemd" "$new/share/doc"
cp "$here"/example/*.zip "$new/share/example/"
cp "$here/doc/operations.md" "$new/share/doc/"
cp "$here/systemd/procvision-runner.service" "$new/share/systemd/"

# --- config (first install only), root, wrapper ---------------------------------------------------------
if [ ! -f "$config" ]; then
  step "writing $config"
  cat > "$config.tmp" <<JSON
{
  "root": "$root",
  "host": "127.0.0.1",
  "port": 8765
}
JSON
  mv "$config.tmp" "$config"
else
  step "keeping $config"
fi
mkdir -p "$root"
if [ -n "$user" ]; then
  if ! id -u "$user" >/dev/null 2>&1; then
    step "creating system user $user"
    useradd --system --user-group --home-dir "$root" --shell /usr/sbin/nologin "$user" \
      || die "cannot create user $user"
  fi
  chown "$user:" "$root"
  chmod 0750 "$root"
fi
cat > "$new/procvision-runner" <<SH
#!/bin/sh
exec "$prefix/current/venv/bin/procvision-runner" --config "$config" "\$@"
SH
chmod 0755 "$new/procvision-runner"

# --- switch: one rename makes the new version current ----------------------------------------------------
ln -sfn "$rel" "$prefix/.current.new"
mv -T "$prefix/.current.new" "$prefix/current"
ln -sfn "../current/procvision-runner" "$prefix/bin/procvision-runner"
ln -sfn "../current/venv/bin/procvision-cli" "$prefix/bin/procvision-cli"
step "installed procvision-runner $PV_VERSION in $new"
# Keep the new version and the one before it (for going back by hand); drop older ones.
# shellcheck disable=SC2012 # our own folder names: no newlines
ls -1dt "$prefix"/versions/*/ 2>/dev/null | tail -n +3 | while IFS= read -r old; do
  rm -rf "$old"
done

# --- systemd ----------------------------------------------------------------------------------------------
unit=""
if [ "$systemd" = 1 ]; then
  unit="$unit_dir/procvision-runner.service"
  mkdir -p "$unit_dir"
  protect_home="yes"
  case "$python" in
    /root/*|/home/*|/run/user/*)
      # ProtectHome=yes would hide the interpreter the venv points at: let the service read it.
      protect_home="read-only"
      step "note: $python lives under a home folder; the unit gets ProtectHome=read-only" ;;
  esac
  sed -e "s#/opt/procvision-runner#$prefix#g" -e "s#/var/lib/procvision#$root#g" \
      -e "s#^ProtectHome=yes\$#ProtectHome=$protect_home#" \
      -e "s#^User=procvision\$#User=$user#" -e "s#^Group=procvision\$#Group=$(id -gn "$user" 2>/dev/null || echo "$user")#" \
      "$here/systemd/procvision-runner.service" > "$unit.tmp"
  mv "$unit.tmp" "$unit"
  step "installed $unit"
  if [ "$unit_dir" = /etc/systemd/system ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    if systemctl is-active --quiet procvision-runner; then
      step "restarting the running service on the new version"
      systemctl restart procvision-runner
    fi
  fi
fi

example="$prefix/current/share/example/$(basename "$(ls "$new"/share/example/*.zip | head -n1)")"
cat <<TXT

ProcVision Runner $PV_VERSION is installed.
  start:   $( [ -n "$unit" ] && echo "systemctl enable --now procvision-runner" || echo "$prefix/bin/procvision-runner serve" )
  token:   $root/.token (written at first start; the CLI reads it)
  status:  $prefix/bin/procvision-runner status
  example: $prefix/bin/procvision-runner install $example
  config:  $config
  docs:    $prefix/current/share/doc/operations.md
TXT

# Workers run in a bubblewrap box (docs/operations.md, "Worker sandbox"). A station without it still
# serves, unboxed and said loudly at every start; it cannot be fetched from here (no network).
if ! command -v bwrap >/dev/null 2>&1; then
  cat >&2 <<TXT

WARNING: bubblewrap (bwrap) is not installed: algorithm workers will run UNBOXED, able to read the
API token and change every deployed version. Install the Debian package 'bubblewrap' (from the
station's package mirror or a .deb copied over), or set "sandbox": "require" in $config to refuse
to run workers unboxed.
TXT
fi
