# Shared by bin/quickstart and bin/check (sourced, not run): install what is missing, nothing more.

HG_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HG_VENV="$HG_ROOT/.venv"

hg_say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

hg_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else hg_say "need root for: $* (no sudo here)"; return 1
  fi
}

# Debian's packages: Mosquitto (the broker and its clients) and systemd-analyze (unit checks).
hg_ensure_apt() {
  local missing=()
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto mosquitto-clients)
  if [ "${1:-}" = dev ]; then
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v openssl >/dev/null || missing+=(openssl)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  hg_say "installing ${missing[*]} from Debian's packages"
  hg_as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive hg_as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# A virtualenv in .venv with the project installed; redone only when pyproject.toml changes.
hg_ensure_venv() {
  local extra="${1:-}" spec="." stamp
  [ -n "$extra" ] && spec=".[$extra]"
  stamp="$HG_VENV/.installed-$(sha256sum "$HG_ROOT/pyproject.toml" | cut -c1-16)-${extra:-run}"
  [ -f "$stamp" ] && return 0
  if [ ! -x "$HG_VENV/bin/python" ]; then
    hg_say "creating $HG_VENV"
    python3 -m venv "$HG_VENV"
  fi
  hg_say "installing homeguard-hub ${extra:+with [$extra] }into $HG_VENV"
  "$HG_VENV/bin/python" -m pip install -q --upgrade pip
  (cd "$HG_ROOT" && "$HG_VENV/bin/python" -m pip install -q -e "$spec")
  rm -f "$HG_VENV"/.installed-*
  touch "$stamp"
}

hg_mosquitto() { command -v mosquitto || echo /usr/sbin/mosquitto; }
