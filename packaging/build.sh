#!/usr/bin/env bash
# Build release artifacts into target/packaging/ (CI runs every step).
#
#   packaging/build.sh assets           man page + shell completions from the clap definition
#   packaging/build.sh deb              Debian package with cargo-deb (installs cargo-deb if missing)
#   packaging/build.sh windows-zip EXE  Windows zip: vblaunch.exe, vblaunchw.exe (the GUI one next
#                                       to EXE), README, example config, install-shortcut.cmd
#   packaging/build.sh templates        Homebrew formula and winget manifest, fields filled from Cargo.toml
#
# `assets` and `deb` build target/release/vblaunch (and vblaunchw, which the .deb ships) first.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/packaging
mkdir -p "$OUT"
say() { printf '[packaging] %s\n' "$*"; }

meta() { # meta FIELD -> value from Cargo.toml via cargo metadata
    cargo metadata --no-deps --format-version 1 --locked |
        python3 -c 'import json,sys; p=json.load(sys.stdin)["packages"][0]; print(p.get(sys.argv[1]) or "")' "$1"
}

assets() {
    cargo build --release --locked --bin vblaunch --bin vblaunchw
    local exe=target/release/vblaunch dir=$OUT/assets
    mkdir -p "$dir"
    "$exe" manpage > "$dir/vblaunch.1"
    gzip -9nf "$dir/vblaunch.1"
    "$exe" completions bash > "$dir/vblaunch.bash"
    "$exe" completions zsh > "$dir/_vblaunch"
    "$exe" completions fish > "$dir/vblaunch.fish"
    "$exe" completions powershell > "$dir/vblaunch.ps1"
    say "assets in $dir: $(ls "$dir" | tr '\n' ' ')"
}

deb() {
    assets
    if ! command -v cargo-deb >/dev/null 2>&1; then
        say "installing cargo-deb (cargo install --locked cargo-deb)"
        cargo install --locked cargo-deb
    fi
    cargo deb --no-build --locked --output "$OUT/"
    say "built $(ls "$OUT"/*.deb)"
}

windows_zip() {
    local exe=${1:?usage: build.sh windows-zip PATH/TO/vblaunch.exe}
    local version name dir
    version=$(meta version)
    name=vblaunch-$version-windows-x86_64
    dir=$OUT/$name
    rm -rf "$dir" "$OUT/$name.zip"
    mkdir -p "$dir"
    cp "$exe" "$dir/vblaunch.exe"
    # The shortcuts start vblaunchw.exe (no console window): ship both.
    local gui
    gui=$(dirname "$exe")/vblaunchw.exe
    [ -f "$gui" ] || { echo "build.sh: $gui is missing (build it with --bin vblaunchw)" >&2; exit 1; }
    cp "$gui" "$dir/vblaunchw.exe"
    cp README.md "$dir/README.md"
    cp config/vblaunch.example.toml "$dir/vblaunch.example.toml"
    cp packaging/windows/install-shortcut.cmd "$dir/install-shortcut.cmd"
    python3 - "$OUT" "$name" <<'PY'
import os, sys, zipfile
out, name = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(os.path.join(out, name + ".zip"), "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(os.listdir(os.path.join(out, name))):
        z.write(os.path.join(out, name, f), arcname=f"{name}/{f}")
PY
    say "built $OUT/$name.zip"
}

templates() {
    local version description license
    version=$(meta version)
    description=$(meta description)
    license=$(meta license)
    for t in packaging/homebrew/vblaunch.rb.in packaging/winget/vblaunch.yaml.in; do
        local dst=$OUT/$(basename "${t%.in}")
        VERSION=$version DESCRIPTION=$description LICENSE=$license python3 - "$t" "$dst" <<'PY'
import os, sys
text = open(sys.argv[1], encoding="utf-8").read()
for key in ("VERSION", "DESCRIPTION", "LICENSE"):
    text = text.replace("@" + key + "@", os.environ[key].replace('"', '\\"'))
open(sys.argv[2], "w", encoding="utf-8").write(text)
PY
        say "rendered $dst"
    done
}

case "${1:-}" in
    assets) assets ;;
    deb) deb ;;
    windows-zip) windows_zip "${2:-}" ;;
    templates) templates ;;
    *) sed -n '2,9p' "$0"; exit 2 ;;
esac
