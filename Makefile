# el2visor: the two commands that matter are `make run` and `make test` (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := image

TARGET   := aarch64-unknown-none-softfloat
HOST     := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
ELF      := target/$(TARGET)/release/el2visor
IMG      := target/el2visor.img
CACHE    := .cache
DTBS     := target/dtbs
QEMU     := qemu-system-aarch64
OBJCOPY   = $(shell ls $$(rustc --print sysroot)/lib/rustlib/*/bin/llvm-objcopy 2>/dev/null | head -n1)

# The QEMU machine `make run` uses; override on the command line (e.g. CPU=cortex-a72 SMP=4).
CPU      ?= max
SMP      ?= 2
MEM      ?= 1G
GIC      ?= 3
BOOTARGS ?=
# `make run GUEST=Image INITRD=initrd CMDLINE="…"` boots any kernel the Xen way (guest-loader);
# CMDLINE defaults to console=ttyAMA0.
GUESTS   := $(CACHE)/guests
GUEST_ADDR  := 0x49000000
INITRD_ADDR := 0x4c000000
# `make run VMS="KERNEL:INITRD:CPUS:MEM[:CMDLINE] …"` boots several dom0less domains instead, named
# domU1, domU2… in that order, each with a vpl011 (docs/dom0less.md). INITRD may be empty; commas
# in CMDLINE become spaces (default console=ttyAMA0).
VMS      ?=
QEMU_MACHINE = -M virt,virtualization=on,gic-version=$(GIC) -cpu $(CPU) -smp $(SMP) -m $(MEM)
QEMU_VIRT = $(QEMU) $(QEMU_MACHINE) -nographic -no-reboot -monitor none -serial stdio

.PHONY: image run test setup bench bench-test clean host-test qemu-test lint guests FORCE

setup:
	@bash tests/setup.sh

PROBE_IMG := target/probe/probe.img

# The probe guest (tests/probe-guest) is el2visor's embedded default guest.
$(PROBE_IMG): FORCE setup
	@bash tests/probe-guest/build.sh target/probe

$(ELF): FORCE setup $(PROBE_IMG)
	@EL2VISOR_EMBED_GUEST=$(abspath $(PROBE_IMG)) cargo build --release --quiet --features embed-guest

$(IMG): $(ELF)
	@$(OBJCOPY) -O binary $(ELF) $(IMG)

image: $(IMG)

comma := ,
GUEST_LOADER = $(if $(GUEST),-device guest-loader$(comma)addr=$(GUEST_ADDR)$(comma)kernel=$(GUEST)$(comma)bootargs="$(if $(CMDLINE),$(CMDLINE),console=ttyAMA0)") \
               $(if $(INITRD),-device guest-loader$(comma)addr=$(INITRD_ADDR)$(comma)initrd=$(INITRD))

# With VMS: the machine's own DT plus one `xen,domain` node per VM (tests/tools/dom0less.sh, for
# exactly the machine booted), modules loaded with `-device loader`.
run: $(IMG)
ifeq ($(strip $(VMS)),)
	timeout 300 $(QEMU_VIRT) -kernel $(IMG) -append "$(BOOTARGS)" $(GUEST_LOADER)
else
	@set --; i=0; \
	for vm in $(VMS); do \
	    i=$$((i + 1)); \
	    IFS=: read -r kernel initrd cpus mem cmdline extra <<<"$$vm"; \
	    if [ -z "$$mem" ] || [ -n "$$extra" ]; then \
	        echo "make run: VM $$i '$$vm' is not KERNEL:INITRD:CPUS:MEM[:CMDLINE]" >&2; exit 2; \
	    fi; \
	    cmdline=$${cmdline:-console=ttyAMA0}; \
	    set -- "$$@" "domU$$i=$$kernel:$$initrd:$$cpus:$$mem:$${cmdline//,/ }:vpl011"; \
	done; \
	args=$$(bash tests/tools/dom0less.sh target/dom0less "$(QEMU_MACHINE)" "$$@") || exit 1; \
	echo "timeout 300 $(QEMU_VIRT) -kernel $(IMG) -append \"$(BOOTARGS)\" $$args"; \
	timeout 300 $(QEMU_VIRT) -kernel $(IMG) -append "$(BOOTARGS)" $$args
endif

# Debian's arm64 cloud kernel and a busybox initramfs, for the Linux tests and benchmarks.
guests: setup
	@bash tests/fixtures/fetch-guests.sh $(GUESTS) >/dev/null

host-test: setup
	@bash tests/fixtures/make-dtbs.sh $(DTBS)
	cargo test --quiet --lib --target $(HOST)
	cd tests/probe-guest && cargo test --quiet --lib --locked --target $(HOST) --target-dir $(CURDIR)/target/probe/host

qemu-test: $(IMG) guests
	@bash tests/fixtures/make-dtbs.sh $(DTBS)
	EL2VISOR_GUESTS=$(abspath $(GUESTS)) cargo test --quiet --test qemu --target $(HOST) -- --test-threads=2

# Clippy on both targets, warnings as errors; Cargo.toml denies unsafe blocks without `// SAFETY:`.
lint: setup
	cargo clippy --quiet --release -- -D warnings
	cargo clippy --quiet --lib --tests --target $(HOST) -- -D warnings

test: setup lint host-test qemu-test tools-test bench-test

# The Linux benchmark fetches its guests itself (tests/fixtures/fetch-guests.sh), so `make bench`
# needs no `make guests` first.
bench: $(IMG)
	@bash tests/bench/run.sh

# That it does, in a tree without guests (the packages `make guests` downloaded are reused).
bench-test: guests
	@bash tests/bench/test-guests.sh $(GUESTS)

clean:
	cargo clean
	rm -rf $(CACHE)

include tests/tools/tools.mk
