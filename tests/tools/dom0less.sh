#!/usr/bin/env bash
# Write the Xen dom0less device tree that boots several VMs under el2visor on QEMU virt, the way
# ImageBuilder does for Xen: dump QEMU's own DT for the machine, add one `xen,domain` node per VM
# under /chosen (modules loaded with `-device loader`), and print the QEMU arguments that load it.
#
#   tests/tools/dom0less.sh OUT_DIR "QEMU MACHINE ARGS" VM...
#
# Each VM is NAME=KERNEL:INITRD:CPUS:MEM[:CMDLINE[:FLAGS]] (MEM with M or G; INITRD may be empty;
# FLAGS is a comma list: `vpl011`, `dtb=PARTIAL.dtb` (its /passthrough devices), `pt=/HOST/PATH`
# (mark that host node `xen,passthrough`, as ImageBuilder does), `dom0` for the dom0-like VM, whose kernel
# and initrd go directly under /chosen and which takes the CPUs and RAM no domain took; CPUS and MEM
# are ignored for it). Writes OUT_DIR/dom0less.dtb and prints, on stdout, the arguments to add to
# the QEMU command line (-dtb and one -device loader per module).
set -euo pipefail

out=$1
machine=$2
shift 2
[ $# -ge 1 ] || { echo "dom0less.sh: no VM given" >&2; exit 2; }
QEMU=${QEMU:-qemu-system-aarch64}
mkdir -p "$out"

# QEMU's own DT for exactly this machine.
# shellcheck disable=SC2086
"$QEMU" $machine -machine dumpdtb="$out/base.dtb" -nographic >/dev/null 2>&1
dtc -q -I dtb -O dts -o "$out/base.dts" "$out/base.dtb"

# Modules go from 0x49000000 up, each on a 2 MiB boundary (clear of el2visor at 0x40200000 and of
# the DTB QEMU places at 0x48000000).
addr=$((0x49000000))
place() { # file -> sets at and sz, advances addr
    sz=$(stat -c %s "$1")
    at=$addr
    addr=$(( (addr + sz + 0x1fffff) & ~0x1fffff ))
}
hex() { printf '0x%x' "$1"; }
bytes() { # 256M / 1G -> bytes
    case $1 in
        *G) echo $(( ${1%G} << 30 )) ;;
        *M) echo $(( ${1%M} << 20 )) ;;
        *K) echo $(( ${1%K} << 10 )) ;;
        *) echo "$1" ;;
    esac
}

nodes=""
marks=""
loaders=""
for vm in "$@"; do
    name=${vm%%=*}
    spec=${vm#*=}
    IFS=: read -r kernel initrd cpus mem cmdline flags <<<"$spec"
    [ -f "$kernel" ] || { echo "dom0less.sh: VM $name: no kernel at '$kernel'" >&2; exit 2; }
    vpl011=""
    partial=""
    dom0=""
    IFS=, read -r -a fl <<<"${flags:-}"
    for f in "${fl[@]}"; do
        case $f in
            vpl011) vpl011="vpl011;" ;;
            dtb=*) partial=${f#dtb=} ;;
            dom0) dom0=1 ;;
            pt=*) marks+=" &{${f#pt=}} { xen,passthrough; };" ;;
            "") ;;
            *) echo "dom0less.sh: VM $name: unknown flag '$f'" >&2; exit 2 ;;
        esac
    done
    place "$kernel"; ka=$at; ks=$sz
    loaders+=" -device loader,file=$kernel,addr=$(hex "$ka"),force-raw=on"
    mods="module@$(printf %x "$ka") { compatible = \"multiboot,kernel\", \"multiboot,module\"; reg = <0x0 $(hex "$ka") 0x0 $(hex "$ks")>; bootargs = \"${cmdline:-}\"; };"
    if [ -n "$initrd" ]; then
        place "$initrd"; ia=$at; is=$sz
        loaders+=" -device loader,file=$initrd,addr=$(hex "$ia"),force-raw=on"
        mods+=" module@$(printf %x "$ia") { compatible = \"multiboot,ramdisk\", \"multiboot,module\"; reg = <0x0 $(hex "$ia") 0x0 $(hex "$is")>; };"
    fi
    if [ -n "$partial" ]; then
        place "$partial"; da=$at; ds=$sz
        loaders+=" -device loader,file=$partial,addr=$(hex "$da"),force-raw=on"
        mods+=" module@$(printf %x "$da") { compatible = \"multiboot,device-tree\", \"multiboot,module\"; reg = <0x0 $(hex "$da") 0x0 $(hex "$ds")>; };"
    fi
    if [ -n "$dom0" ]; then
        nodes+=" $mods"
    else
        kib=$(( $(bytes "$mem") >> 10 ))
        nodes+=" $name { compatible = \"xen,domain\"; #address-cells = <2>; #size-cells = <2>; memory = <0x0 $(hex "$kib")>; cpus = <$cpus>; $vpl011 $mods };"
    fi
done

# Add the nodes to /chosen (a second `chosen` block merges into the first in dtc).
{
    cat "$out/base.dts"
    echo "/ { chosen { #address-cells = <2>; #size-cells = <2>; $nodes }; };"
    echo "$marks"
} >"$out/dom0less.dts"
dtc -q -I dts -O dtb -o "$out/dom0less.dtb" "$out/dom0less.dts"
echo "-dtb $out/dom0less.dtb$loaders"
