# The build shared by the examples/multiarch trees; each tree's Makefile sets ARCH, TRIPLE,
# TARGET_FLAGS, CFLAGS_ARCH, AFLAGS_ARCH, EMULATION, ENTRY_OBJ, TARGET_OBJ, LDS, FILLER_STORES
# and FILLER_FILES_<variant>, then includes this file.

# `make -s` silences the "  CC  file" progress lines too (checked before MAKEFLAGS changes).
ifneq ($(findstring s,$(firstword x$(MAKEFLAGS))),)
say := :
else
say := echo
endif

MAKEFLAGS += -r
.SUFFIXES:

VARIANT ?= overflow
VARIANTS := overflow at-risk safe
ifeq ($(filter $(VARIANT),$(VARIANTS)),)
$(error VARIANT must be one of: $(VARIANTS))
endif

ifeq ($(origin CC),default)
CC := clang
endif
ifeq ($(origin LD),default)
LD := ld.lld
endif
PYTHON ?= python3
HERE := $(dir $(lastword $(MAKEFILE_LIST)))

O := out/$(VARIANT)

COMMON_FLAGS := $(TARGET_FLAGS) -g -nostdinc -Iinclude -fno-PIE
CFLAGS := $(COMMON_FLAGS) $(CFLAGS_ARCH) -O2 -ffunction-sections -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -nostdlib -ffreestanding -fno-stack-protector -fno-common -Wall
AFLAGS := $(COMMON_FLAGS) $(AFLAGS_ARCH) -D__ASSEMBLY__
DEPFLAGS = -MMD -MP -MF $(@:.o=.d)

# The final link, as kbuild runs it (cut down), inside $(O).
LDFLAGS_vmlinux := $(EMULATION) --no-undefined -X -e _stext
LINK_VMLINUX := $(LD) $(LDFLAGS_vmlinux) -T ./$(LDS)

FILLER_DIR := out/filler
FILLER_FILES := $(FILLER_FILES_$(VARIANT))
FILLER_OBJS := $(foreach i,$(shell seq -f %02g 0 $$(($(FILLER_FILES) - 1))),$(FILLER_DIR)/drivers/filler/filler_$(i).o)
FILLER_ALL_SRCS := $(foreach i,$(shell seq -f %02g 0 $$(($(FILLER_FILES_overflow) - 1))),$(FILLER_DIR)/drivers/filler/filler_$(i).c)

# Link order of vmlinux.o: the entry assembly first, the bulk of the kernel, the C target last.
VMLINUX_OBJS := $(O)/$(ENTRY_OBJ) $(FILLER_OBJS) $(O)/$(TARGET_OBJ)

.PHONY: default vmlinux.o vmlinux noinhibit all-variants clean
.DELETE_ON_ERROR:
.SECONDARY:

default: vmlinux.o

vmlinux.o: $(O)/vmlinux.o $(O)/.vmlinux.cmd $(O)/$(LDS) ; @:
vmlinux: $(O)/vmlinux ; @:
noinhibit: $(O)/vmlinux.noinhibit ; @:

$(O)/%.o: %.c
	@mkdir -p $(@D)
	@$(say) "  CC      $@"
	@$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(O)/%.o: %.S
	@mkdir -p $(@D)
	@$(say) "  AS      $@"
	@$(CC) $(AFLAGS) $(DEPFLAGS) -c $< -o $@

$(FILLER_DIR)/.generated: $(HERE)gen-filler.py
	@$(say) "  GEN     $(FILLER_DIR)/drivers/filler/filler_*.c"
	@$(PYTHON) $(HERE)gen-filler.py $(FILLER_DIR)/drivers/filler $(FILLER_FILES_overflow) $(FILLER_STORES)
	@touch $@

$(FILLER_ALL_SRCS): $(FILLER_DIR)/.generated ;

$(FILLER_DIR)/drivers/filler/filler_%.o: $(FILLER_DIR)/drivers/filler/filler_%.c
	@$(say) "  CC      $@"
	@$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(O)/vmlinux.o: $(VMLINUX_OBJS)
	@$(say) "  LD      $@"
	@$(LD) $(EMULATION) -r -o $@ $(VMLINUX_OBJS)

$(O)/$(LDS): $(LDS)
	@mkdir -p $(@D)
	@cp $< $@

$(O)/.vmlinux.cmd: Makefile
	@mkdir -p $(@D)
	@echo 'savedcmd_vmlinux := $(LINK_VMLINUX) -o vmlinux vmlinux.o' > $@

# The final link: stdout and stderr to build.log (kept when it fails, shown, and make fails).
$(O)/vmlinux: $(O)/vmlinux.o $(O)/.vmlinux.cmd $(O)/$(LDS)
	@$(say) "  LD      $@"
	@cd $(O) && { $(LINK_VMLINUX) -o vmlinux vmlinux.o > build.log 2>&1 || { cat build.log >&2; rm -f vmlinux; exit 1; }; }

# The answer key: every out-of-range relocation ld.lld finds, the image written anyway.
$(O)/vmlinux.noinhibit: $(O)/vmlinux.o $(O)/.vmlinux.cmd $(O)/$(LDS)
	@$(say) "  LD      $@ (--noinhibit-exec)"
	@cd $(O) && $(LINK_VMLINUX) --noinhibit-exec --error-limit=0 -o vmlinux.noinhibit vmlinux.o > noinhibit.log 2>&1 \
		|| { cat noinhibit.log >&2; exit 1; }

all-variants:
	@for v in $(VARIANTS); do $(MAKE) --no-print-directory VARIANT=$$v vmlinux.o noinhibit || exit 1; done
	@for v in $(VARIANTS); do $(MAKE) --no-print-directory VARIANT=$$v vmlinux >/dev/null 2>&1 \
		|| $(say) "  ($$v: final link failed; see out/$$v/build.log)"; done

clean:
	rm -rf out

-include $(VMLINUX_OBJS:.o=.d)
