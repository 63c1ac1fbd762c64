"""Real HTTP servers the end-to-end tests start on 127.0.0.1 (each in a subprocess)."""
