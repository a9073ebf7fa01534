"""Claims: every claim kind measured on the engine's runs, and judged."""
