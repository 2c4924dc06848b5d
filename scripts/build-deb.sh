#!/usr/bin/env bash
# make deb: the Debian package pygrub_VERSION_all.deb, built from this tree with dpkg-deb
# (nothing else outside the repository). Usage: scripts/build-deb.sh [OUTPUT-DIRECTORY]
# DEB_MAINTAINER sets the Maintainer field; SOURCE_DATE_EPOCH the files' dates (default:
# the last commit's, so two builds of one commit are the same bytes).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
umask 022

# One version: the package's own __version__, which pyproject.toml reads too.
version=$(sed -n 's/^__version__ = "\([0-9][0-9.]*\)"$/\1/p' src/pygrub/__init__.py)
if [ -z "$version" ]; then
    echo "build-deb: no __version__ = \"X.Y.Z\" in src/pygrub/__init__.py" >&2
    exit 1
fi
maintainer=${DEB_MAINTAINER:-pygrub maintainers <maintainers@users.noreply.example>}
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/pygrub
site=$root/usr/lib/python3/dist-packages

# The library: every module and the JSON Schema (what the wheel holds), no bytecode
# (the postinst compiles it with py3compile, the prerm removes it with py3clean).
(cd src && find pygrub -name __pycache__ -prune -o -type f \( -name '*.py' -o -name '*.json' \) -print) |
    while read -r file; do
        install -D -m 0644 "src/$file" "$site/$file"
    done
install -d "$site/pygrub-$version.dist-info"
printf 'Metadata-Version: 2.1\nName: pygrub\nVersion: %s\nRequires-Python: >=3.10\n' "$version" \
    >"$site/pygrub-$version.dist-info/METADATA"
echo dpkg >"$site/pygrub-$version.dist-info/INSTALLER"

# The commands, on Debian's python3 (not whatever python3 comes first on $PATH).
install -d "$root/usr/bin"
printf '#!/usr/bin/python3\nfrom pygrub.cli import command\n\ncommand()\n' >"$root/usr/bin/pygrub"
printf '#!/usr/bin/python3\nimport sys\n\nfrom pygrub.dropin import main\n\nsys.exit(main())\n' \
    >"$root/usr/bin/pygrub-dropin"
chmod 0755 "$root/usr/bin/pygrub" "$root/usr/bin/pygrub-dropin"

install -d "$root/usr/share/man/man1" "$root/usr/share/doc/pygrub"
gzip -9n <man/pygrub.1 >"$root/usr/share/man/man1/pygrub.1.gz"
install -m 0644 packaging/deb/copyright "$root/usr/share/doc/pygrub/copyright"
{
    echo "pygrub ($version) unstable; urgency=medium"
    echo
    echo "  * Built from the pygrub repository by make deb."
    echo
    echo " -- $maintainer  $(date -R -u -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$root/usr/share/doc/pygrub/changelog.gz"

install -d "$root/DEBIAN"
install -m 0755 packaging/deb/preinst packaging/deb/postinst packaging/deb/prerm \
    packaging/deb/postrm "$root/DEBIAN/"
{
    echo "# A Xen version installed (or removed) after pygrub: its pygrub is taken over"
    echo "# (or the wrapper left behind is cleared) by postinst triggered. File triggers"
    echo "# take no wildcards, so each series Debian may ship is named; for any other,"
    echo "# dpkg-reconfigure pygrub. The directory, not its pygrub: once diverted, Xen's"
    echo "# file is pygrub.xen to dpkg, and its removal activates only that name."
    for minor in $(seq 4 40); do
        echo "interest-noawait /usr/lib/xen-4.$minor/bin"
    done
} >"$root/DEBIAN/triggers"
chmod 0644 "$root/DEBIAN/triggers"
installed_size=$(du -s -k --apparent-size "$root/usr" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@MAINTAINER@/$maintainer/" \
    -e "s/@INSTALLED_SIZE@/$installed_size/" packaging/deb/control >"$root/DEBIAN/control"
(cd "$root" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/pygrub_${version}_all.deb"
