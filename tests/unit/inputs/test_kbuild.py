"""The final link command as kernels record it in .vmlinux.cmd: split, unwrapped, filtered, never run by a shell."""

from __future__ import annotations

from pathlib import Path

from reachls.kbuild import parse_link_line, read_link_command

LINK_VMLINUX_SH = ('scripts/link-vmlinux.sh "ld.lld" "-EL  -maarch64elf -z norelro -z noexecstack '
                   '--plugin-opt=-mattr=+pauth" "--no-undefined -X --pic-veneer -z max-page-size=65536 '
                   '--build-id=sha1 -Map=System.map --fatal-warnings"; true')


def test_link_vmlinux_sh_form_keeps_layout_flags_and_drops_the_rest(tmp_path: Path):
    command = parse_link_line(LINK_VMLINUX_SH, tmp_path, ".vmlinux.cmd")
    assert command.linker == "ld.lld"
    assert command.flags == ("-EL", "-maarch64elf", "-z", "norelro", "-z", "noexecstack", "--no-undefined", "-X",
                             "--pic-veneer", "-z", "max-page-size=65536", "--build-id=sha1")
    assert command.dropped == ("--plugin-opt=-mattr=+pauth", "--fatal-warnings")
    assert command.script is None


def test_direct_link_line_names_the_script_relative_to_the_build_dir(tmp_path: Path):
    (tmp_path / ".vmlinux.cmd").write_text(
        "savedcmd_vmlinux := ld.lld -EL -T ./arch/arm64/kernel/vmlinux.lds -o vmlinux vmlinux.o $(touch pwned)\n")
    command = read_link_command(tmp_path)
    assert command.script == tmp_path / "arch/arm64/kernel/vmlinux.lds"
    assert command.flags == ("-EL",)
    assert not (tmp_path / "pwned").exists()
    assert not any("pwned" in flag for flag in command.flags)
