# Host tools for guest bundles and the Raspberry Pi 4 boot folder (issue 6). The main Makefile
# includes this file; it uses HOST, IMG (and its rule) and CACHE from there, with fallbacks so that
# `make -f Makefile -f tests/tools/tools.mk …` and a standalone include both work.
#
#   make bundle KERNEL=Image [INITRD=initrd] [CMDLINE="…"] [DTPROPS=props.dtb]  -> target/guest.bundle
#   make bundle VMS="KERNEL:INITRD:CPUS:MEM[:CMDLINE] …"    several VMs      -> target/guest.bundle
#   make rpi4-boot [KERNEL=… INITRD=… CMDLINE="…" | VMS="…"] [BOOTARGS="…"] [RPI_FIRMWARE=firmware/boot]
#                                                                               -> target/rpi4-boot/
#   make tools-test     the tool's unit tests, then rpi4-boot (one VM and several) and the checks
#
# VMS: each VM [NAME=]KERNEL:INITRD:CPUS:MEM[:CMDLINE], separated by spaces (tests/tools/bundle-vms.sh;
# quote a CMDLINE with spaces as in a shell); el2visor boots them as dom0less domains.
#
# rpi4-boot without KERNEL boots the Debian kernel and busybox initramfs of
# tests/fixtures/fetch-guests.sh; without CMDLINE the guest gets RPI4_GUEST_CMDLINE (the PL011 as its
# console). BOOTARGS is el2visor's own command line (as for `make run`), written to cmdline.txt.

HOST  ?= $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
IMG   ?= target/el2visor.img
CACHE ?= .cache

BUNDLE_TOOL_SRC    := tests/tools/el2visor-bundle
BUNDLE_TOOL_TARGET := $(CURDIR)/target/tools
BUNDLE_TOOL        := $(BUNDLE_TOOL_TARGET)/$(HOST)/release/el2visor-bundle
GUEST_BUNDLE       ?= target/guest.bundle
RPI4_DIR           := target/rpi4-boot
RPI4_GUEST_CMDLINE ?= console=ttyAMA0,115200
RPI4_BOOTARGS      ?= $(if $(BOOTARGS),$(BOOTARGS),coherency=auto loglevel=info)

# Single-quote a make value for the shell, so paths and command lines pass through untouched.
tools_shq = '$(subst ','\'',$(1))'
# The guest command line for rpi4-boot: CMDLINE when given (even empty), else the default. CMDLINE
# is taken as written (`$(value …)`), so a `$` in it reaches the guest instead of being expanded.
rpi4_guest_cmdline = $(if $(filter undefined,$(origin CMDLINE)),$(RPI4_GUEST_CMDLINE),$(value CMDLINE))

.PHONY: bundle-tool bundle rpi4-boot tools-test

# Explicit host target: el2visor's .cargo/config.toml, which cargo finds by walking up from the
# tool's folder, makes the bare-metal target the default. Its own target dir keeps it apart.
bundle-tool:
	@cd $(BUNDLE_TOOL_SRC) && cargo build --quiet --release --locked \
	    --target $(HOST) --target-dir $(BUNDLE_TOOL_TARGET)

bundle: bundle-tool
ifneq ($(strip $(VMS)),)
	@mkdir -p $(dir $(GUEST_BUNDLE))
	@bash tests/tools/bundle-vms.sh $(BUNDLE_TOOL) $(GUEST_BUNDLE) $(call tools_shq,$(value VMS))
else
	@if [ -z $(call tools_shq,$(KERNEL)) ]; then \
	    echo 'make bundle: KERNEL is not set. Usage: make bundle KERNEL=path/to/arm64/Image [INITRD=path/to/initrd] [CMDLINE="guest command line"] [DTPROPS=props.dtb], or make bundle VMS="KERNEL:INITRD:CPUS:MEM[:CMDLINE] …"' >&2; \
	    exit 2; \
	fi
	@mkdir -p $(dir $(GUEST_BUNDLE))
	@$(BUNDLE_TOOL) build --kernel $(call tools_shq,$(KERNEL)) \
	    $(if $(INITRD),--initrd $(call tools_shq,$(INITRD))) \
	    $(if $(DTPROPS),--dt-props $(call tools_shq,$(DTPROPS))) \
	    --cmdline $(call tools_shq,$(value CMDLINE)) -o $(GUEST_BUNDLE)
endif

rpi4-boot: bundle-tool $(IMG)
	@bash tests/tools/make-rpi4-boot.sh --tool $(BUNDLE_TOOL) --image $(IMG) --out $(RPI4_DIR) \
	    --cache $(CACHE) --kernel $(call tools_shq,$(KERNEL)) --initrd $(call tools_shq,$(INITRD)) \
	    --cmdline $(call tools_shq,$(rpi4_guest_cmdline)) --bootargs $(call tools_shq,$(RPI4_BOOTARGS)) \
	    $(if $(RPI_FIRMWARE),--firmware $(call tools_shq,$(RPI_FIRMWARE))) \
	    $(if $(VMS),--vms $(call tools_shq,$(value VMS)))

tools-test: rpi4-boot
	@cd $(BUNDLE_TOOL_SRC) && cargo test --quiet --locked --target $(HOST) --target-dir $(BUNDLE_TOOL_TARGET)
	@bash tests/tools/check-rpi4-boot.sh --tool $(BUNDLE_TOOL) $(RPI4_DIR)
	@bash tests/tools/test-check-rpi4-boot.sh --tool $(BUNDLE_TOOL) $(RPI4_DIR)
	@bash tests/tools/test-vms.sh --tool $(BUNDLE_TOOL) --image $(IMG) --cache $(CACHE)
