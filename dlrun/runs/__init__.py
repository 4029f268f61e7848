"""The run directory: its layout and atomic writes, reading and finding runs, compare, diff and plots."""
