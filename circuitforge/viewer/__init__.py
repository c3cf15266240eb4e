"""Self-contained HTML pages (one file, no server, no network) for our graphs."""
