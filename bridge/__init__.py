"""The core of dmp-bridge: domain model, decisions and pure builders. No I/O here (DESIGN.md §3)."""
