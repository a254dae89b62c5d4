"""The `manara` command line: one module per verb group, each a thin layer over service functions."""
