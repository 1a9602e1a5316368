"""Records in (readers) and records out (writers): plain text, JSONL, CSV, TSV, JSON."""
