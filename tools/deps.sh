#!/bin/sh
# Installs the Debian packages ferry needs to build, test and benchmark.
# Does nothing when they are all present; as root it runs apt-get update once
# and installs what is missing; otherwise it prints the exact command to run.
set -eu

PACKAGES="make gcc pkg-config libzmq3-dev libjansson-dev libssl-dev uuid-dev
libreadline-dev libcmocka-dev python3-dev jupyter-client clang-format
python3-jupyter-kernel-test python3-nbclient jupyter-nbconvert jupyter-console
python3-pytest python3-jedi python3-ipython python3-psutil tmux clang
libclang-rt-14-dev python3-ipykernel python3-joblib python3-numpy
python3-matplotlib python3-distributed python3-pandas python3-tqdm python3-comm
python3-ipywidgets jupyter-nbextension-jupyter-js-widgets jupyter-notebook chromium
chromium-driver python3-selenium"

missing=""
for p in $PACKAGES; do
    # dpkg-query prints "install ok installed" only for a fully installed package.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing="$missing $p"
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "ferry needs these Debian packages; please run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
# shellcheck disable=SC2086  # word splitting of the list is intended
apt-get install -y -q --no-install-recommends $missing >&2
