#!/usr/bin/env bash
# Builds a several-VMs guest bundle from a VMS list (what `make bundle VMS=…` and
# `make rpi4-boot VMS=…` run):
#
#   tests/tools/bundle-vms.sh EL2VISOR_BUNDLE OUT "VM VM …"
#
# Each VM is [NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE] (INITRD may be empty, MEM like 256M or 1G,
# NAME defaults to vm1, vm2 …). VMs are separated by spaces; quote a CMDLINE that has spaces, as in
# a shell: 'Image:initrd:2:256M:"console=ttyAMA0 quiet"'. Without CMDLINE a VM gets
# console=ttyAMA0 (its vpl011, the only console a VM has when el2visor owns the UART). Prints
# el2visor-bundle's listing.
set -euo pipefail
[ $# -eq 3 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
tool=$1 out=$2 list=$3
args=()
while IFS= read -r -d '' vm; do
    fields=${vm//[^:]/}
    [ ${#fields} -ne 3 ] || vm="$vm:console=ttyAMA0"
    args+=(--vm "$vm")
done < <(printf '%s' "$list" | xargs printf '%s\0')
[ ${#args[@]} -gt 0 ] || { echo "bundle-vms: VMS is empty" >&2; exit 2; }
exec "$tool" build-vms "${args[@]}" -o "$out"
