"""The synthetic county (Demoshire) for development, demos and benchmarks: `seed.seed` loads it.

Import rule: imports the domain (directory) and childindex.migrations only; nothing outside
childindex/ imports it (the CLI's `seed` and `demo` commands, the benchmarks and the tests do).
"""
