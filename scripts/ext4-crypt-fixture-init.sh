#!/bin/busybox sh
# shellcheck shell=dash
# /init of the guest scripts/make-ext4-crypt-fixtures.sh boots: on the ext4 trixie's
# mke2fs made (/dev/vda), the kernel itself makes what no mkfs can: casefolded
# directories (chattr +F, only on an empty directory) and encrypted ones (an fscrypt v2
# policy on a raw key, and e4crypt's v1 policy on a passphrase), fills them, lists them,
# unmounts and powers off.
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /tmp /run /etc /mnt
dmesg -n 1
fail() { echo "FIXTURE-FAIL $*"; }
for m in $(cat /modules); do insmod "/ko/$m.ko" || fail "insmod $m"; done  # one line of names
for _ in $(seq 100); do [ -b /dev/vda ] && break; sleep 0.2; done
mount -t ext4 /dev/vda /mnt || fail mount

# -- /boot casefolded, filled by the kernel: the names as written, found in any case -----
mkdir /mnt/boot && chattr +F /mnt/boot || fail "chattr +F boot"
cp -a /src/boot/. /mnt/boot/ || fail "cp boot"

# -- Folded: mixed-case and non-ASCII names, and enough of them for an htree -----------
mkdir /mnt/Folded && chattr +F /mnt/Folded || fail "chattr +F Folded"
cd /mnt/Folded || fail "cd Folded"
echo readme >README.TXT
echo mixed >MixedCase.Cfg
printf 'stra\303\237e\n' >"Stra$(printf '\303\237')e.txt"
printf 'angstrom\n' >"$(printf '\303\205')NGSTR$(printf '\303\226')M.txt"
mkdir Sub.Dir && echo inner >Sub.Dir/Inner.TXT
ln -s README.TXT Link.To.Readme
for i in $(seq 1 300); do echo "$i" >"Entry-$i.TXT"; done
cd /

# -- locked: fscrypt's v2 policy on a raw 32-byte key (fscrypt setup writes
#    /etc/fscrypt.conf, then the filesystem's /.fscrypt) ---------------------------------
fscrypt setup --force --quiet --time=1ms || fail "fscrypt setup"
fscrypt setup /mnt --force --quiet || fail "fscrypt setup /mnt"
mkdir /mnt/locked
fscrypt encrypt /mnt/locked --quiet --source=raw_key --name=pygrub-fixture --key=/key \
    --no-recovery || fail "fscrypt encrypt"
echo "not for the bootloader" >/mnt/locked/secret.txt || fail "write locked"
mkdir /mnt/locked/grub && echo "menuentry hidden {}" >/mnt/locked/grub/grub.cfg
ln -s secret.txt /mnt/locked/link
echo long >"/mnt/locked/$(printf 'n%.0s' $(seq 1 200))"
fscrypt status /mnt/locked | sed 's/^/FIXTURE-FSCRYPT /'

# -- locked-v1: e4crypt's v1 policy, its key derived from a passphrase -----------------
mkdir /mnt/locked-v1
echo pygrub-fixture | e4crypt add_key -S 0x7079677275622d66697874757265000a /mnt/locked-v1 ||
    fail "e4crypt add_key"
e4crypt get_policy /mnt/locked-v1 | sed 's/^/FIXTURE-E4CRYPT /'
echo "v1 secret" >/mnt/locked-v1/kernel.txt || fail "write locked-v1"

# -- the kernel's casefolded lookups, the oracle for ours: each name (printf's escapes)
#    in hex, and whether the kernel finds it -----------------------------------------------
release=$(ls /src/boot | sed -n 's/^vmlinuz-//p')
for query in /boot/vmlinuz-$release /boot/VMLINUZ-$release /boot/Grub/GRUB.CFG \
    /Folded/README.TXT /Folded/readme.txt /Folded/ReadMe.Txt /Folded/mixedcase.cfg \
    /Folded/MIXEDCASE.CFG '/Folded/stra\303\237e.txt' /Folded/STRASSE.TXT \
    '/Folded/STRA\341\272\236E.TXT' '/Folded/\303\245ngstr\303\266m.txt' \
    '/Folded/A\314\212NGSTRO\314\210M.txt' /Folded/entry-1.txt /Folded/ENTRY-300.TXT \
    /Folded/sub.dir/inner.txt /Folded/SUB.DIR/INNER.TXT /Folded/link.to.readme \
    /Folded/nope /FOLDED/README.TXT /Boot/grub/grub.cfg; do
    # shellcheck disable=SC2059  # the query is printf's format: its escapes are the name
    name=$(printf "$query")
    hex=$(printf "$query" | od -An -tx1 | tr -d ' \n')
    if [ -e "/mnt$name" ]; then echo "FIXTURE-LOOKUP $hex found"; else echo "FIXTURE-LOOKUP $hex missing"; fi
done

# -- what the kernel shows with the keys, then without ---------------------------------
lsattr -d /mnt/boot /mnt/Folded /mnt/locked /mnt/locked-v1 | sed 's/^/FIXTURE-LSATTR /'
ls -a /mnt/locked | sed 's/^/FIXTURE-UNLOCKED /'
fscrypt lock /mnt/locked --quiet || fail "fscrypt lock"
ls -a /mnt/locked | sed 's/^/FIXTURE-LOCKED /'
cd /
umount /mnt || fail umount
echo FIXTURE-DONE
sync
poweroff -f
