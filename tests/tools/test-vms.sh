#!/usr/bin/env bash
# `make tools-test`'s several-VMs part: `make bundle VMS=…` and `make rpi4-boot VMS=…` (the script
# it runs) with the test guests of tests/fixtures/fetch-guests.sh: the bundle lists both VMs as
# given, the Pi boot folder passes check-rpi4-boot.sh and its README names the VMs; a bad VMS fails
# and leaves no bundle.
#
#   tests/tools/test-vms.sh --tool EL2VISOR_BUNDLE --image EL2VISOR_IMG --cache CACHE
set -euo pipefail
[ $# -eq 6 ] && [ "$1" = --tool ] && [ "$3" = --image ] && [ "$5" = --cache ] || { sed -n '7p' "$0" >&2; exit 2; }
tool=$2 image=$4 cache=$6
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fail() { printf 'test-vms: FAIL: %s\n' "$*" >&2; exit 1; }

guests=$(bash "$repo/tests/fixtures/fetch-guests.sh" "$cache/guests")
kernel=$(sed -n 3p <<<"$guests") initrd=$(sed -n 2p <<<"$guests")
work="$repo/target/tools-test/vms"
rm -rf "$work" && mkdir -p "$work"
vms="pi1=$kernel:$initrd:2:256M:\"console=ttyAMA0 quiet\" $kernel::1:128M"

out=$(make -C "$repo" --no-print-directory bundle GUEST_BUNDLE="$work/vms.bundle" VMS="$vms" 2>&1) \
    || fail "make bundle VMS=… failed: $out"
list=$("$tool" check "$work/vms.bundle")
grep -q 'version 2, 2 VMs' <<<"$list" || fail "not a 2-VM bundle: $list"
grep -q 'VM pi1: 2 vCPUs, 256 MiB RAM, vpl011' <<<"$list" || fail "pi1 wrong: $list"
grep -q '"console=ttyAMA0 quiet"' <<<"$list" || fail "pi1's quoted command line lost: $list"
grep -q 'VM vm2: 1 vCPUs, 128 MiB RAM, vpl011' <<<"$list" || fail "vm2 wrong: $list"
grep -A3 'VM vm2' <<<"$list" | grep -q '"console=ttyAMA0"' || fail "vm2 did not get the default console=ttyAMA0: $list"

if bash "$here/bundle-vms.sh" "$tool" "$work/bad.bundle" "$kernel::1:3M" 2>"$work/err"; then
    fail "3M of RAM was accepted"
fi
grep -q 'VM vm1 RAM' "$work/err" || fail "the refusal does not name the VM: $(cat "$work/err")"
[ ! -e "$work/bad.bundle" ] || fail "a refused build left a bundle"

bash "$here/make-rpi4-boot.sh" --tool "$tool" --image "$image" --out "$work/rpi4-boot" --cache "$cache" \
    --kernel "" --initrd "" --cmdline "" --bootargs "loglevel=info" --vms "$vms" >/dev/null
bash "$here/check-rpi4-boot.sh" --tool "$tool" "$work/rpi4-boot" >/dev/null || fail "the several-VMs boot folder fails its check"
readme="$work/rpi4-boot/README.md"
grep -q -- '- VM pi1: 2 vCPUs, 256 MiB RAM' "$readme" && grep -q -- '- VM vm2: 1 vCPUs, 128 MiB RAM' "$readme" \
    || fail "the README does not list the VMs"
echo "test-vms: ok"
