# isboot — top-level build.
#
#   make test   rustfmt check, clippy (warnings denied), every test, the demo checked (CI)
#   make demo   the main job as far as the layers have landed
#   make bench  our iSCSI initiator against libiscsi's iscsi-perf on one tgtd, and boot storms (root)
#   make fuzz   run the fuzz targets for a while (FUZZ_SECONDS each; needs nightly)
#   make kmod   build isboot.ko (on Linux: cross build from registry packages)
#   make nostd-check  the portable crates build with no std, no floating point
#   make rom    target/rom/isboot.efi, the boot ROM as a UEFI image (Debian's toolchain)
#   make rom-size     where isboot.efi's bytes go, by crate
#   make kmod-check   structural checks of isboot.ko (relocations, FPU, symbols, layouts)
#
# Fixtures captured from real firmware live in tests/fixtures/ (see its README).

FIXTURES := tests/fixtures
CARGO ?= cargo
FUZZ_SECONDS ?= 600
# make bench's boot storms: how many nodes boot at once, per row.
STORM_NODES ?= 1 16 64 256
# DIR:TARGET pairs: each cargo-fuzz package and its targets.
FUZZ_TARGETS ?= fuzz:ibft_parse fuzz:ibft_locate fuzz:ipoib_dhcp fuzz:ipoib_wire fuzz:ipoib_udp \
	fuzz:loader_config fuzz:loader_eth_frames \
	hca/fuzz:mad_parse hca/fuzz:ud_packet hca/fuzz:cqe_eqe \
	iscsi-initiator/fuzz:pdu_decode iscsi-initiator/fuzz:text_negotiate \
	iscsi-initiator/fuzz:session_process

.PHONY: all test test-deps fmt-check clippy unit-tests demo demo-check demo-deps fuzz clean kmod kmod-check nostd-check bench rom rom-size

all: test

# isboot.ko is built before the unit tests: kldrun's tests (kmod/harness) run the real module;
# isboot.efi too: the QEMU test boots it.
test: test-deps fmt-check clippy kmod rom unit-tests kmod-check nostd-check demo-check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# cargo-nextest when present (faster, per-test isolation); plain cargo test otherwise.
# Doc tests run separately because nextest does not run them. kldrun's tests load
# target/kmod/isboot.ko, so it is built first.
unit-tests: kmod
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		echo "$(CARGO) nextest run --workspace --all-features"; \
		$(CARGO) nextest run --workspace --all-features --no-fail-fast; \
	else \
		echo "$(CARGO) test --workspace --all-features"; \
		$(CARGO) test --workspace --all-features --no-fail-fast; \
	fi
	$(CARGO) test --workspace --all-features --doc

# The real peers the tests talk to (as root, from Debian's packages, when missing): Kea, tgtd,
# istgt, libiscsi's tools (a reference initiator), tshark (Wireshark's decoder, which checks
# the fabric's captures; DEBIAN_FRONTEND=noninteractive answers its debconf question about
# non-root capture with the default, no), OpenSM on ibsim with infiniband-diags (a real subnet
# manager for the SM bridge), makefs/gdisk for FreeBSD root disks; for isboot.efi booting Linux
# in QEMU (loader/tests/uefi_qemu.rs): QEMU, OVMF, the FAT tools, systemd-boot and a static
# busybox for the initramfs.
TEST_PACKAGES := kea-dhcp4-server tgt istgt libiscsi-bin tshark ibsim-utils opensm infiniband-diags \
	makefs gdisk qemu-system-x86 ovmf mtools dosfstools systemd-boot-efi busybox-static
test-deps:
	@missing=""; \
	for p in $(TEST_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "== installing what the tests need:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The real servers the demo boots from (as root, from Debian's packages, when missing).
demo-deps:
	@command -v kea-dhcp4 >/dev/null 2>&1 && command -v tgtd >/dev/null 2>&1 && command -v makefs >/dev/null 2>&1 && command -v sgdisk >/dev/null 2>&1 || { \
		echo "== installing the demo's servers and disk tools: kea-dhcp4-server tgt makefs gdisk"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kea-dhcp4-server tgt makefs gdisk; }

demo: demo-deps
	@$(MAKE) --no-print-directory kmod >target/demo-kmod.log 2>&1 || { cat target/demo-kmod.log; exit 1; }
	@$(CARGO) build -q --release -p kldrun
	@$(CARGO) build -q --release -p ibft --features std --bins
	@$(CARGO) build -q --release -p loader --features std --examples
	@$(CARGO) build -q --release -p hca-sim --examples
	@mkdir -p target
	@echo "== 1. The whole boot on one machine: the ROM on a simulated InfiniBand fabric (port 1"
	@echo "==    without a cable, port 2 up), DHCP over IB from a real Kea through the fabric's"
	@echo "==    gateway, an iSCSI login with mutual CHAP to a real tgtd across the fabric, the"
	@echo "==    boot blocks, the iBFT left in base memory; then isboot.ko's load flow (its"
	@echo "==    portable half, on the host platform) finding and publishing that table, and its"
	@echo "==    boot thread logging in again and finding the FreeBSD root on da0p2; then the real"
	@echo "==    isboot.ko (the FreeBSD kld) under kldrun doing the same from the table the ROM left,"
	@echo "==    through the ROM's HCA with its own driver and IPoIB interface isbib0:"
	@echo "==    kldrun --phys 0x9e620=target/demo-ibft.bin --hca 81:00.0,port1=down,guid=...,forward=3260,..."
	@echo "==    --mountroot --sysctl net.isboot --sysctl hw.ibft target/kmod/isboot.ko"
	@echo "==    (In a private network namespace: nothing leaves the machine.)"
	./target/release/examples/boot_sim target/demo-ibft.bin --pcap target/demo-boot.pcap --timeline target/demo-timeline.svg --kldrun target/release/kldrun:target/kmod/isboot.ko
	@echo "== Every packet of that boot is in target/demo-boot.pcap: read it with tshark -r target/demo-boot.pcap (add -V for every field) or wireshark target/demo-boot.pcap"
	@echo "== Where its time went, stage by stage, with the fabric's events: target/demo-timeline.svg (open it in a browser)"
	@echo
	@echo "== 2. The iBFT the ROM left, as an admin sees it (the Linux /sys/firmware/ibft view;"
	@echo "==    CHAP secrets hidden unless --show-secrets)"
	./target/release/ibft dump target/demo-ibft.bin
	@echo
	@echo "== 3. A table written by real iPXE firmware: validated and summarised"
	./target/release/ibft check $(FIXTURES)/ibft/mutual.bin
	@echo
	@echo "== 4. The simulated fabric under the boot: bring-up, SA joins, UD traffic, a link flap"
	./target/release/examples/ib_fabric
	@echo
	@echo "== 5. A damaged table (target 0's NIC association changed to 7, checksum fixed up):"
	@echo "==    one clear line naming the structure and the field, non-zero exit"
	@scripts/ibft-damage.py $(FIXTURES)/ibft/nochap.bin target/demo-corrupt.bin 417 7
	@./target/release/ibft check target/demo-corrupt.bin; echo "(exit status $$?)"
	@echo
	@echo "== The demo showed: a node booting over InfiniBand from port 2 (port 1 dead) through"
	@echo "== DHCP and a mutual-CHAP iSCSI login, the iBFT it leaves, and the module taking it:"
	@echo "== its boot thread found the interface, logged in again and found root on da0p2, and the"
	@echo "== real isboot.ko did it too under kldrun through the same HCA: its own driver, IPoIB on"
	@echo "== port 2, isbib0, kernel sockets, CAM SIM, da0."
	@echo "== Still to come on a real machine: the same module in a FreeBSD kernel on a real ConnectX."

# Runs the demo and checks what it printed: the main command cannot break silently.
demo-check:
	@mkdir -p target
	@$(MAKE) --no-print-directory demo > target/demo.log 2>&1 || { cat target/demo.log; echo "demo-check: make demo failed"; exit 1; }
	@scripts/check-demo.sh target/demo.log

fuzz:
	@$(CARGO) +nightly --version >/dev/null 2>&1 || { echo "make fuzz needs a nightly toolchain (rustup toolchain install nightly)"; exit 1; }
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@for t in $(FUZZ_TARGETS); do mkdir -p $${t%%:*}/corpus/$${t##*:}; done
	@for t in ibft_parse ibft_locate; do cp $(FIXTURES)/ibft/*.bin fuzz/corpus/$$t/; done
	@for t in $(FUZZ_TARGETS); do \
		d=$${t%%:*}; n=$${t##*:}; \
		echo "== fuzzing $$n ($$d) for $(FUZZ_SECONDS) s"; \
		(cd $$d && $(CARGO) +nightly fuzz run $$n corpus/$$n -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1) || exit 1; \
	done

bench: demo-deps
	$(CARGO) build --release -p iscsi-initiator --features std --bin iscsi-initiator
	$(CARGO) build --release -p kldrun
	OUT=$(KMOD_OUT) kmod/scripts/build-kld.sh
	python3 scripts/bench.py
	@echo
	@echo "== The same workloads across the simulated fabric (IPoIB, the gateway, tgtd): IOPS in"
	@echo "== simulated time; CPU per I/O is real, for the whole simulated path in one process"
	$(CARGO) build -q --release -p loader --features std --examples
	./target/release/examples/bench_sim 2
	@echo
	@echo "== Boot storms: N nodes power on at once on one fabric (one SM, the gateway, one Kea, one"
	@echo "== tgtd with a shared LUN), each running the ROM flow to its iBFT; p50/p99 in simulated ms"
	@echo "== from power-on to the iBFT, wall and CPU per boot real (STORM_NODES=\"1 16\" for fewer)"
	@printf "%6s %7s %8s %9s %9s %12s\n" nodes booted wall_s p50_ms p99_ms cpu_ms/boot
	@for n in $(STORM_NODES); do \
		./target/release/examples/boot_sim --nodes $$n | sed -n 's/^storm: nodes=\([^ ]*\) booted=\([^ ]*\) wall_s=\([^ ]*\) p50_ms=\([^ ]*\) p99_ms=\([^ ]*\) cpu_ms_per_boot=\([^ ]*\)$$/\1 \2 \3 \4 \5 \6/p' | \
		xargs printf "%6s %7s %8s %9s %9s %12s\n"; \
	done

# The portable crates build for a bare-metal soft-float target and use no floating point.
nostd-check:
	scripts/nostd-check.sh

# isboot.efi (and isboot-nohca.efi, without the ConnectX driver) from registry packages only:
# Debian's rustc with -Zbuild-std for x86_64-unknown-uefi, ziglang's lld-link. Prints the sizes.
ROM_OUT ?= $(CURDIR)/target/rom
rom:
	@OUT=$(ROM_OUT) loader/scripts/build-efi.sh

# Where isboot.efi's bytes go, by crate (non-LTO builds' linker maps), and what the ConnectX
# driver and the IPoIB path add.
rom-size:
	@OUT=$(ROM_OUT) FEATURES_ONLY=measure loader/scripts/build-efi.sh

KMOD_OUT ?= $(CURDIR)/target/kmod

# isboot.ko: on FreeBSD through bsd.kmod.mk (kmod/Makefile); on Linux by the cross build
# (kmod/scripts/build-kld.sh installs Debian's rustc-web and PyPI's ziglang if missing).
kmod:
ifeq ($(shell uname -s),FreeBSD)
	cd kmod && /usr/bin/make
else
	OUT=$(KMOD_OUT) kmod/scripts/build-kld.sh
endif

kmod-check: kmod
ifeq ($(shell uname -s),FreeBSD)
	@echo "kmod-check runs on Linux (CI)"
else
	OUT=$(KMOD_OUT) kmod/scripts/check-kld.sh
endif

clean:
	$(CARGO) clean
