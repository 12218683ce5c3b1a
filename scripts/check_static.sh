#!/usr/bin/env bash
# CI's check of what the image ships, where no container engine runs: the
# binary is static (no dynamic loader, no libc to bring), prints its version
# and validates the example repo. The image build itself is `make image`.
set -euo pipefail
bin="${1:?usage: check_static.sh BINARY}"
info="$(file -L "$bin" 2>/dev/null || true)"
if [ -n "$info" ]; then
    echo "$info"
    case "$info" in *"dynamically linked"*) echo "not static: $bin"; exit 1 ;; esac
fi
if readelf -l "$bin" 2>/dev/null | grep -q "Requesting program interpreter"; then
    echo "not static (has a program interpreter): $bin"; exit 1
fi
"$bin" --version
"$bin" validate -m manifests
stripped="$(mktemp)"
strip -o "$stripped" "$bin"
echo "static binary: $(( $(stat -c %s "$bin") / 1024 / 1024 )) MiB, stripped (as the image ships it) $(( $(stat -c %s "$stripped") / 1024 / 1024 )) MiB"
rm -f "$stripped"
