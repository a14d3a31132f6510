"""The one TOML config: its typed schema, loading with clear errors, and the reference.

Owns: every config key and its default (`schema`), reading and writing TOML (`loader`),
docs/config.md generated from the schema (`reference`)."""
