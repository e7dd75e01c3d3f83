"""Print a shell completion script for numa-emu (bash or zsh), made from the command's own parser.

  eval "$(numa-emu completion bash)"                       # this shell only
  numa-emu completion bash > ~/.local/share/bash-completion/completions/numa-emu   # every new bash
  numa-emu completion zsh > "${fpath[1]}/_numa-emu"         # zsh: a folder on $fpath
"""
from __future__ import annotations

import argparse

import shtab

SHELLS = ("bash", "zsh")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("shell", choices=SHELLS, help="the shell the script is for")


def run(args: argparse.Namespace) -> int:
    from numa_emu.cli.main import build_parser

    print(shtab.complete(build_parser(), shell=args.shell))
    return 0
