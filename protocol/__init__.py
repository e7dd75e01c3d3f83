"""The shared vocabulary of numa-emu: wire format, messages, errors, units, topology, policy.

Every other package imports this one; this one imports nothing else of ours.
"""
