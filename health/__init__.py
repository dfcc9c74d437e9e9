"""Health of mirrors and relays: probes (I/O) and the view the table builder reads (pure)."""
