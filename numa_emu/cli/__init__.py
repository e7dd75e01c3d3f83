"""The numa-emu command line: a registry of small command modules, one per command."""
