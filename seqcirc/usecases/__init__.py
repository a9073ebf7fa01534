"""Use cases: what each command runs (evaluate a file, compare, discover, scan roles,
export data); the entry points (cli/, pytest_plugin.py, the API) only call these."""
