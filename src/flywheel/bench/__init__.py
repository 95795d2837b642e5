"""Benchmarks (a surface, like the CLI): each module exposes a click `command` and prints JSON."""
