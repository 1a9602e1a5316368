"""The Click layer: parses options, reads records, calls the core, writes records."""
