"""The pure decision core: no await, no clock, no logging, no I/O (DESIGN point 1)."""
